"""Fuzz the trust-file parsers: only a FormatError (or success) is allowed.

Usage:
    python tools/fuzz_formats.py [--seconds 60] [--seed N] [--corpus DIR ...] [--crashes DIR]
    python tools/fuzz_formats.py --atheris [atheris/libFuzzer options ...]

The default mode is a self-contained random-mutation loop with a time budget: it takes valid
files (freshly built ITL/CTL, .sgn, .enc.sgn and container images, the shared samples in
``../shared/samples`` when present, and any ``--corpus`` files), mutates them (bit flips, byte
sets, inserts, deletes, truncations, lying 16-bit lengths, copied ranges, DER-targeted edits) and
feeds each result to ``parse_trust_list``, ``parse_signed``, ``parse_image``,
``parse_container``, ``parse_header``, the TLV reader, ``parse_config``, the SCCP stream reader
(``sccp.parse_stream``, seeded with a registration exchange) and, for what parses,
``Record.certificate()``, the self-verification, the signature check and decryption; and to
the network codecs (:data:`WIRE`): the TVS and CAPF frame readers and their message checks,
SIP ``parse_message`` (datagram and stream) and ``StreamReader``, and the TFTP server's
request, option and ACK parsing. Any exception (or warning) other than a documented
FormatError subclass (or, after a successful parse, SignatureError/DecryptionError), or for a
codec anything but its own error (ProtocolError; PacketError for TFTP), is a crash: its input
is written to ``--crashes`` and the run exits 1.

``--save-corpus DIR`` writes the seeds and every mutated input whose outcomes (which parser
accepted it, which error each raised) were not seen before into ``DIR/<seed kind>/<sha1>.bin``
(at most ``--corpus-max`` files per kind): how ``tests/data/fuzz`` was made and is grown
(``tests/test_fuzz_corpus.py`` feeds every file of it to every parser).

``--atheris`` runs the same check under atheris (coverage-guided), only if atheris is
importable; everything after ``--atheris`` goes to libFuzzer.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import importlib
import os
import random
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from phone.errors import (
    DecryptionError,
    FormatError,
    LengthError,
    ProtocolError,
    SignatureError,
    StructureError,
    TruncatedError,
    ValueFormatError,
)
from phone.formats import (
    ContainerImage,
    Role,
    SignedFile,
    Signer,
    TrustList,
    build_container,
    build_encrypted,
    build_signed,
    build_trust_list,
    certificateless_record,
    decrypt,
    parse_container,
    parse_image,
    parse_signed,
    parse_trust_list,
    record_from_certificate,
    verify_self_signed,
)
from phone.formats.configxml import parse_config
from phone.formats.header import parse_header
from phone.formats.tlv import parse_elements
from phone.net import tftp_packets
from phone.pki import FreshKeys, self_signed
from phone.wire import capf, sccp
from phone.wire import sip as sipwire
from phone.wire import tvs as tvswire

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
DOCUMENTED = (TruncatedError, LengthError, StructureError, ValueFormatError)
INTERESTING_U16 = (0, 1, 2, 3, 4, 5, 0x0D, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
DER_MARKERS = (b"\xa0\x03\x02\x01", b"\x06\x09", b"\x06\x03\x55\x1d", b"\x30\x82")

PARSERS: dict[str, Callable[[bytes], object]] = {
    "parse_trust_list": parse_trust_list,
    "parse_signed": parse_signed,
    "parse_image": parse_image,
    "parse_container": parse_container,
    "parse_header": parse_header,
    "tlv.parse_elements": lambda data: parse_elements(data, 0, len(data)),
    "parse_config": parse_config,
    "sccp.parse_stream": sccp.parse_stream,
}


def _tvs(data: bytes) -> object:
    """The TVS reader fed in two pieces, then what server and client check of each frame."""
    reader = tvswire.FrameReader()
    frames = [*reader.feed(data[: len(data) // 2]), *reader.feed(data[len(data) // 2 :])]
    for frame in frames:
        if frame.command in (tvswire.Command.VERIFY_RESPONSE, tvswire.Command.QUERY_RESPONSE):
            tvswire.decode_answer(frame)
        else:
            tvswire.check_request(frame)
    return frames


def _capf(data: bytes) -> object:
    """One CAPF frame, then every typed getter on it."""
    frame = capf.decode_frame(data)
    for tag in frame.tags():
        frame.raw(tag)
    return frame


def _sip_stream(data: bytes) -> object:
    return list(sipwire.StreamReader().feed(data))


def _tftp(data: bytes) -> object:
    """What the TFTP server does with a datagram on its request port or a transfer's."""
    code = tftp_packets.opcode(data)
    if code == tftp_packets.ACK:
        return tftp_packets.ack_block(data)
    request = tftp_packets.parse_request(data)
    return tftp_packets.negotiate(request.options, 100_000, tftp_packets.Limits())


# The network codecs: each may raise only its own error (a ProtocolError drops the peer; a
# PacketError becomes a TFTP ERROR packet).
WIRE: dict[str, tuple[Callable[[bytes], object], tuple[type[Exception], ...]]] = {
    "tvs.FrameReader": (_tvs, (ProtocolError,)),
    "capf.decode_frame": (_capf, (ProtocolError,)),
    "sip.parse_message": (sipwire.parse_message, (ProtocolError,)),
    "sip.StreamReader": (_sip_stream, (ProtocolError,)),
    "tftp.parse": (_tftp, (tftp_packets.PacketError,)),
}


class Target:
    """The check run on every input, with the keys its post-parse steps need."""

    def __init__(self, signer: Signer, phone_key: rsa.RSAPrivateKey) -> None:
        self.signer = signer
        self.phone_key = phone_key
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.last: list[str] = []

    def __call__(self, data: bytes) -> None:
        """Run every parser on ``data``; raise AssertionError or the stray exception on a bug."""
        for name, parse in PARSERS.items():
            try:
                result = parse(data)
            except FormatError as exc:
                self._check(exc, data)
                self._record(name, exc)
                continue
            self._record(name, None)
            if isinstance(result, TrustList):
                self._trust_list(result, data)
            elif isinstance(result, SignedFile):
                self._signed(result)
            elif isinstance(result, ContainerImage):
                result.hash_matches()
                with contextlib.suppress(SignatureError):
                    result.verify(self.signer.key.public_key())
        for name, (parse, allowed) in WIRE.items():
            try:
                parse(data)
            except allowed as exc:
                self._record(name, exc)
                continue
            self._record(name, None)

    def _record(self, name: str, exc: Exception | None) -> None:
        kind = "ok" if exc is None else type(exc).__name__
        self.outcomes[f"{name}: {kind}"] += 1
        # The error's message with its numbers blanked: a new one is a new path taken.
        reason = "" if exc is None else re.sub(r"0x[0-9a-f]+|\d+", "N", str(exc))[:60]
        self.last.append(f"{name}: {kind}: {reason}")

    def signature(self, data: bytes) -> tuple[str, ...]:
        """What every parser did with ``data``: accepted it, or which error, and why."""
        self.last = []
        self(data)
        return tuple(self.last)

    @staticmethod
    def _check(exc: FormatError, data: bytes) -> None:
        if type(exc) not in DOCUMENTED:
            raise AssertionError(f"undocumented FormatError subclass {type(exc).__name__}")
        if not 0 <= exc.offset <= len(data):
            raise AssertionError(f"offset {exc.offset} outside the {len(data)}-byte input")
        if not exc.expected:
            raise AssertionError("FormatError without 'expected'")

    def _trust_list(self, trust_list: TrustList, data: bytes) -> None:
        if trust_list.encode() != data:
            raise AssertionError("a trust list that parses does not encode back to its bytes")
        for record in trust_list.records:
            try:
                record.certificate()
            except FormatError as exc:
                self._check(exc, data)
        verify_self_signed(trust_list)

    def _signed(self, signed: SignedFile) -> None:
        with contextlib.suppress(SignatureError):
            signed.verify(self.signer.certificate)
        if signed.encrypted:
            with contextlib.suppress(DecryptionError):
                decrypt(signed, self.phone_key)


# --- seeds -------------------------------------------------------------------------------------


def build_seeds() -> tuple[list[bytes], Target]:
    """Fresh valid files of every kind, and the target holding their keys."""
    keys = FreshKeys()
    now = datetime.now(UTC)
    big, other, small = keys.rsa(2048), keys.rsa(2048), keys.rsa(1024)
    sast = self_signed("ITLRECOVERY_fuzz", now=now, key=big)
    tvs = self_signed("fuzz-tvs", now=now, key=other)
    tiny = self_signed("fuzz-small", now=now, key=small)
    signer = Signer(sast.certificate, big)
    small_signer = Signer(tiny.certificate, small)
    stamp = int(now.timestamp())
    itl = build_trust_list(
        [
            record_from_certificate(sast.certificate, Role.SAST),
            record_from_certificate(tvs.certificate, Role.TVS, dns_name="tvs", ip="10.0.0.2"),
            certificateless_record(Role.CCM_TFTP, dns_name="10.0.0.1", ip="10.0.0.1"),
            certificateless_record(6, dns_name="unknown-role"),
        ],
        signer,
        timestamp=stamp,
    )
    seeds = [
        itl.encode(),
        build_signed(
            b"<device/>\n", small_signer, filename="a.cnf.xml.sgn", timestamp=stamp
        ).encode(),
        build_encrypted(
            b"<device><x/></device>\n",
            signer,
            other.public_key(),
            filename="a.cnf.xml.enc.sgn",
            timestamp=stamp,
            aes_key=os.urandom(16),
            iv=os.urandom(16),
        ).encode(),
        build_container(b"[CISCO-ID]\nfuzz\n" * 8, "fuzz.loads", big).encode(),
        sccp_seed(),
        *wire_seeds(tvs_der=tvs.certificate.public_bytes(Encoding.DER)),
    ]
    return seeds, Target(signer, other)


SEED_KINDS = ("trustlist", "signed", "encsigned", "container", "sccp")


def hostile_cases() -> list[tuple[str, bytes]]:
    """Known hostile inputs (issue 13's probes), kept in every corpus --save-corpus writes."""
    body = b"<device><loadInformation>sip88xx.14-1-1</loadInformation></device>"
    cases: list[tuple[str, bytes]] = [
        ("config", f'<?xml version="1.0" encoding="{name}"?>\n'.encode() + body)
        for name in ("x-evil", "UTF-7", "rot13", "hex", "base64", "UTF-32", "cp1252", "")
    ]
    cases += [
        (
            "config",
            b"\xff\xfe" + '<?xml version="1.0" encoding="rot13"?><device/>'.encode("utf-16-le"),
        ),
        (
            "config",
            b'<!DOCTYPE d [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><device>&b;</device>',
        ),
        ("config", b"<device>" * 2000),
        ("tftp", b"\x00\x01\xff\xfe\x00octet\x00"),
        ("tftp", b"\x00\x01ITLFile.tlv\x00octet\x00blksize\x00" + b"9" * 40 + b"\x00"),
        ("tftp", b"\x00\x01ITLFile.tlv\x00octet\x00windowsize\x00"),
        ("tftp", b"\x00\x04\x00"),
        ("sip", b"REGISTER sip:x SIP/2.0\r\nContent-Length: 999999999\r\n\r\n"),
        ("sip", b"SIP/2.0 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
        ("tvs", b"\x57\x01\x01\x00\x00\x00\x00\x01\xff\xff"),
        ("capf", b"\x55\x01\x00\x00\x00\x01\xff\xff"),
    ]
    return cases


WIRE_KINDS = ("config", "tvs", "capf", "sip", "tftp")


def wire_seeds(tvs_der: bytes) -> list[bytes]:
    """A valid input of each network codec (and a config XML), in :data:`WIRE_KINDS` order."""
    config = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<device><deviceProtocol>SIP</deviceProtocol>'
        b'<devicePool><callManagerGroup><members><member priority="0"><callManager>'
        b"<processNodeName>cucm1</processNodeName><ports><sipPort>5060</sipPort>"
        b"<securedSipPort>5061</securedSipPort></ports></callManager></member></members>"
        b"</callManagerGroup></devicePool><loadInformation>sip88xx.14-1-1</loadInformation>"
        b"<vendorConfig><webAccess>1</webAccess></vendorConfig></device>\n"
    )
    device = "CP-8841-SEP001122334455"
    answer = tvswire.response(
        tvswire.Command.VERIFY_RESPONSE, 7, valid=True, roles=(0, 1), ttl=86400
    )
    tvs_bytes = tvswire.encode_frame(
        tvswire.verify_request(7, device, tvs_der)
    ) + tvswire.encode_frame(answer)
    capf_bytes = capf.encode_frame(
        capf.Frame(
            capf.Command.AUTH_REQ,
            1,
            (capf.u8_element(capf.Tag.VERSION, 3), capf.u8_element(capf.Tag.AUTH_TYPE, 0)),
        )
    )
    register = (
        b"REGISTER sip:cucm1.cluster1.lab SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1\r\n"
        b"From: <sip:1001@cucm1.cluster1.lab>;tag=a1\r\n"
        b"To: <sip:1001@cucm1.cluster1.lab>\r\n"
        b"Call-ID: 00112233-1@10.0.0.5\r\nCSeq: 2 REGISTER\r\nMax-Forwards: 70\r\n"
        b'Contact: <sip:1001@10.0.0.5:5060>;+sip.instance="<urn:uuid:00000000-0000-0000-0000-'
        b'001122334455>"\r\n'
        b'Authorization: Digest username="alice",realm="ccmsipline",nonce="abc",'
        b'uri="sip:cucm1.cluster1.lab",response="0123456789abcdef0123456789abcdef",'
        b'algorithm=MD5,qop=auth,nc=00000001,cnonce="x"\r\n'
        b"Expires: 3600\r\nContent-Length: 0\r\n\r\n"
    )
    tftp_bytes = b"\x00\x01SEP001122334455.cnf.xml\x00octet\x00blksize\x001428\x00tsize\x000\x00"
    return [config, tvs_bytes, capf_bytes, register, tftp_bytes]


def sccp_seed() -> bytes:
    """A registration exchange as one SCCP byte stream (both directions concatenated)."""
    register = sccp.StationRegister(
        device_name="SEP001122334455",
        device_type=sccp.DEVICE_TYPES["7942"],
        protocol_version=17,
        extension=sccp.RegisterExtension(max_lines=2, firmware_load="SCCP42.9-4-2SR3-1S"),
    )
    messages: list[sccp.Message | sccp.Unknown] = [
        register,
        sccp.RegisterAck(),
        sccp.CapabilitiesReq(),
        sccp.CapabilitiesRes(capabilities=(sccp.Capability(4),)),
        sccp.ButtonTemplateRes(buttons=(sccp.Button(1, 9),), total=1),
        sccp.LineStatRes(number="1001"),
        sccp.RegisterReject(text="Unknown device"),
        sccp.KeepAlive(),
        sccp.Unknown(0x9F, b"\x01\0\0\0"),
    ]
    return b"".join(sccp.encode(m) for m in messages)


def corpus_files(folders: Sequence[Path], kinds: Sequence[str] = ()) -> list[tuple[str, bytes]]:
    """Every file under ``folders`` (and the shared samples, when present), each with its seed
    kind: its folder's name when that is one of ``kinds`` (a corpus made by --save-corpus),
    "samples" for the shared samples (never saved into a corpus), else "corpus"."""
    found: list[tuple[str, bytes]] = []
    for folder in [SAMPLES, *folders]:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and (data := path.read_bytes()):
                    kind = path.parent.name if path.parent.name in kinds else "corpus"
                    found.append(("samples" if folder == SAMPLES else kind, data))
    return found


# --- mutation ----------------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to six random edits of ``data``."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(9)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[at % len(out)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[at % len(out)] = rng.randrange(256)
        elif op == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:
            del out[at : at + rng.randint(1, 64)]
        elif op == 4:
            del out[at:]
        elif op == 5 and len(out) >= 2:
            at = min(at, len(out) - 2)
            value = rng.choice(
                (
                    *INTERESTING_U16,
                    len(out) & 0xFFFF,
                    (len(out) - at) & 0xFFFF,
                    rng.randrange(65536),
                )
            )
            out[at : at + 2] = value.to_bytes(2, "big")
        elif op == 6 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)]
        elif op == 7:
            out += rng.randbytes(rng.randint(1, 64))
        elif op == 8:
            marker = rng.choice(DER_MARKERS)
            spots = [i for i in range(len(out)) if out.startswith(marker, i)]
            if spots:
                target = rng.choice(spots) + len(marker) + rng.randrange(8)
                if target < len(out):
                    out[target] = rng.randrange(256)
    return bytes(out)


def save_crash(folder: Path, data: bytes) -> Path:
    """Write a crashing input to ``folder`` under its SHA-1 and return the path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    return path


class CorpusWriter:
    """Keeps the inputs whose outcome signature is new (``--save-corpus``)."""

    def __init__(self, folder: Path, per_kind: int) -> None:
        self.folder = folder
        self.per_kind = per_kind
        self.seen: set[tuple[str, ...]] = set()
        self.saved: collections.Counter[str] = collections.Counter()

    def offer(self, kind: str, data: bytes, signature: tuple[str, ...]) -> None:
        if kind == "samples" or signature in self.seen or self.saved[kind] >= self.per_kind:
            return
        self.seen.add(signature)
        folder = self.folder / kind
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{hashlib.sha1(data).hexdigest()}.bin").write_bytes(data)
        self.saved[kind] += 1


def run_loop(args: argparse.Namespace) -> int:
    """The random-mutation loop; return the exit code (1 if anything crashed)."""
    warnings.simplefilter("error")  # as the test suite does: a warning is a crash too
    built, target = build_seeds()
    kinds = [*SEED_KINDS, *WIRE_KINDS]
    seeds = list(zip(kinds, built, strict=True))
    seeds += corpus_files(args.corpus, kinds)
    writer = CorpusWriter(args.save_corpus, args.corpus_max) if args.save_corpus else None
    hostile = hostile_cases()
    seeds += hostile
    if writer is not None:
        for kind, data in [*seeds[: len(kinds)], *hostile]:
            writer.offer(kind, data, ("seed", kind, hashlib.sha1(data).hexdigest()))
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    runs = crashes = 0
    slowest = 0.0
    while time.monotonic() < deadline:
        kind, seed = rng.choice(seeds)
        data = mutate(seed, rng)
        started = time.perf_counter()
        try:
            signature = target.signature(data)
            if writer is not None and len(data) <= args.corpus_size:
                writer.offer(kind, data, signature)
        except Exception:
            crashes += 1
            path = save_crash(args.crashes, data)
            print(f"CRASH ({path}):", file=sys.stderr)
            traceback.print_exc()
        slowest = max(slowest, time.perf_counter() - started)
        runs += 1
    print(f"{runs} inputs from {len(seeds)} seeds in {args.seconds:g}s (seed {args.seed})")
    if writer is not None:
        print(f"saved to {args.save_corpus}: {dict(sorted(writer.saved.items()))}")
    print(f"slowest input: {slowest * 1000:.1f} ms; crashes: {crashes}")
    for outcome, count in sorted(target.outcomes.items()):
        print(f"  {outcome:40} {count}")
    return 1 if crashes else 0


def run_atheris(argv: list[str]) -> int:
    """Run the target under atheris (coverage-guided) if it is installed."""
    try:
        atheris = importlib.import_module("atheris")
    except ImportError:
        print("atheris is not installed: pip install atheris", file=sys.stderr)
        return 2
    warnings.simplefilter("error")
    _seeds, target = build_seeds()
    del _seeds  # libFuzzer takes its corpus from the command line

    def one_input(data: bytes) -> None:
        target(bytes(data))

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and fuzz."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--atheris":
        return run_atheris(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="RNG seed")
    parser.add_argument(
        "--corpus", type=Path, action="append", default=[], help="extra seed files (a folder)"
    )
    parser.add_argument(
        "--crashes",
        type=Path,
        default=Path("fuzz-crashes"),
        help="folder for crashing inputs (default ./fuzz-crashes)",
    )
    parser.add_argument(
        "--save-corpus", type=Path, help="write seeds and new-outcome inputs here (a folder)"
    )
    parser.add_argument("--corpus-max", type=int, default=40, help="files per seed kind")
    parser.add_argument("--corpus-size", type=int, default=8192, help="largest file kept")
    return run_loop(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
