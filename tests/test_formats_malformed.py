"""Untrusted bytes: every parser fails with one documented FormatError, or succeeds.

The property test mutates valid files (built ones, and the shared samples when present) and
feeds them to every parser and to what callers do next with a parsed file (records'
certificates, self-verification, decryption, the JSON views). The only exceptions allowed are
the documented ones: a :class:`FormatError` subclass carrying an offset inside the input and
what was expected there, and, after a successful parse, the documented crypto failures
(:class:`SignatureError`, :class:`DecryptionError`).

``VPHONE_FUZZ_EXAMPLES`` raises the number of examples (default 2000) for a longer local run;
``tools/fuzz_formats.py`` is the open-ended harness.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import time
import tracemalloc
from collections.abc import Callable, Sequence

import pytest
from conftest import FORMATS_TIMESTAMP
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import CERTUTILS_ITL, CONTAINER_LOADS, LEGACY_LOADS, have_samples, samples_dir

from phone.errors import (
    DecryptionError,
    FormatError,
    LengthError,
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
    verify_self_signed,
)
from phone.formats.tlv import u16
from phone.formats.views import container_view, signed_view, trust_list_view

DOCUMENTED = (TruncatedError, LengthError, StructureError, ValueFormatError)
EXAMPLES = int(os.environ.get("VPHONE_FUZZ_EXAMPLES", "2000"))
TEN_MB = 10 * 1024 * 1024

PARSERS: Sequence[Callable[[bytes], object]] = (
    parse_trust_list,
    parse_signed,
    parse_image,
    parse_container,
)


class Context:
    """Keys the post-parse checks use."""

    def __init__(self, certificate: x509.Certificate, phone_key: rsa.RSAPrivateKey) -> None:
        self.certificate = certificate
        self.phone_key = phone_key
        public = certificate.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        self.public_key = public


def check_format_error(exc: FormatError, data: bytes) -> None:
    """The error is one of the documented classes and says where and what."""
    assert type(exc) in DOCUMENTED, f"undocumented error class {type(exc).__name__}"
    assert 0 <= exc.offset <= len(data), f"offset {exc.offset} outside {len(data)} bytes"
    assert exc.expected
    assert str(exc).startswith(f"at byte {exc.offset}: ")


def exercise(data: bytes, context: Context) -> None:
    """Run every parser on ``data``, and everything a caller does next with a success."""
    for parse in PARSERS:
        try:
            result = parse(data)
        except FormatError as exc:
            check_format_error(exc, data)
            continue
        if isinstance(result, TrustList):
            _after_trust_list(result, data)
        elif isinstance(result, SignedFile):
            _after_signed(result, context)
        elif isinstance(result, ContainerImage):
            json.dumps(container_view(result))
            with contextlib.suppress(SignatureError):
                result.verify(context.public_key)


def _after_trust_list(trust_list: TrustList, data: bytes) -> None:
    assert trust_list.encode() == data  # parse/encode is exact for anything that parses
    for record in trust_list.records:
        try:
            record.certificate()
        except FormatError as exc:
            check_format_error(exc, data)
    check = verify_self_signed(trust_list)  # reports, never raises
    assert check.valid in (True, False, None)
    json.dumps(trust_list_view(trust_list))


def _after_signed(signed: SignedFile, context: Context) -> None:
    json.dumps(signed_view(signed))
    with contextlib.suppress(SignatureError):
        signed.verify(context.certificate)
    if signed.encrypted:
        with contextlib.suppress(DecryptionError):
            decrypt(signed, context.phone_key)


# --- seeds -----------------------------------------------------------------------------------


class Seeds(list[bytes]):
    """The valid files mutations start from (a short repr keeps failure reports readable)."""

    def __repr__(self) -> str:
        return f"<{len(self)} seed files>"


@pytest.fixture(scope="module")
def context(rsa_signer: Signer, phone_key: rsa.RSAPrivateKey) -> Context:
    return Context(rsa_signer.certificate, phone_key)


@pytest.fixture(scope="module")
def seeds(
    cucm_itl: TrustList,
    small_signer: Signer,
    rsa_signer: Signer,
    phone_key: rsa.RSAPrivateKey,
) -> Seeds:
    """Valid files of every kind: built ones, plus the shared samples when present."""
    mixed = build_trust_list(
        [
            certificateless_record(Role.CCM_TFTP, dns_name="10.48.47.153", ip="10.48.47.153"),
            certificateless_record(6, dns_name="unknown-role"),
        ],
        small_signer,
        filename="CTLFile.tlv",
        timestamp=FORMATS_TIMESTAMP,
    )
    files = Seeds(
        [
            cucm_itl.encode(),
            mixed.encode(),
            build_signed(b"<device/>", small_signer, filename="a.sgn", timestamp=1).encode(),
            build_encrypted(
                b"<device><x/></device>",
                rsa_signer,
                phone_key.public_key(),
                filename="a.enc.sgn",
                timestamp=1,
                aes_key=bytes(16),
                iv=bytes(16),
            ).encode(),
            build_container(b"payload" * 10, "x.loads", rsa_signer.key).encode(),
        ]
    )
    if have_samples():
        for name in (CERTUTILS_ITL, LEGACY_LOADS, CONTAINER_LOADS):
            files.append((samples_dir() / name).read_bytes())
    return files


def test_seeds_are_valid(seeds: Seeds, context: Context) -> None:
    for data in seeds:
        parsed = parse_image(data)
        assert parsed.encode() == data
        exercise(data, context)


# --- mutations -------------------------------------------------------------------------------

INTERESTING_U16 = (0, 1, 2, 3, 4, 5, 0x0D, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)

# Starts of DER fields inside the certificates that records carry: a certificate's version, an
# OID, a long SEQUENCE, an extension OID. Mutating right after them reaches the certificate
# parser's own error paths, which blind byte flips in a 10 KB file rarely hit.
DER_MARKERS = (b"\xa0\x03\x02\x01", b"\x06\x09", b"\x06\x03\x55\x1d", b"\x30\x82")

OPS = ("flip", "set", "insert", "delete", "truncate", "u16", "copy", "append", "der")

mutation = st.tuples(
    st.sampled_from(OPS),
    st.integers(min_value=0, max_value=1 << 20),
    st.integers(min_value=0, max_value=255),
    st.binary(min_size=1, max_size=16),
)


def mutate(data: bytes, steps: Sequence[tuple[str, int, int, bytes]]) -> bytes:
    """Apply ``steps`` to ``data``: bit flips, byte sets, inserts, deletes, lying lengths..."""
    out = bytearray(data)
    for op, where, value, chunk in steps:
        at = where % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= 1 << (value % 8)
        elif op == "set" and out:
            out[at % len(out)] = value
        elif op == "insert":
            out[at:at] = chunk
        elif op == "delete":
            del out[at : at + 1 + value]
        elif op == "truncate":
            del out[at:]
        elif op == "u16" and len(out) >= 2:
            at = min(at, len(out) - 2)
            choices = (*INTERESTING_U16, len(out) & 0xFFFF, (len(out) - at) & 0xFFFF)
            out[at : at + 2] = u16(choices[value % len(choices)])
        elif op == "copy" and out:
            out[at:at] = out[(at * 7) % len(out) :][: 1 + value]
        elif op == "append":
            out += chunk * (1 + value % 4)
        elif op == "der":
            _mutate_der(out, where, value, chunk)
    return bytes(out)


def _mutate_der(out: bytearray, where: int, value: int, chunk: bytes) -> None:
    marker = DER_MARKERS[value % len(DER_MARKERS)]
    found: list[int] = []
    at = out.find(marker)
    while at >= 0 and len(found) < 64:
        found.append(at + len(marker))
        at = out.find(marker, at + 1)
    if not found:
        return
    target = found[where % len(found)] + (value // len(DER_MARKERS)) % 8
    if target < len(out):
        out[target] = chunk[0]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    index=st.integers(min_value=0, max_value=63),
    steps=st.lists(mutation, min_size=1, max_size=6),
)
def test_mutated_files_fail_only_with_format_errors(
    seeds: Seeds, context: Context, index: int, steps: list[tuple[str, int, int, bytes]]
) -> None:
    exercise(mutate(seeds[index % len(seeds)], steps), context)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_fail_only_with_format_errors(context: Context, data: bytes) -> None:
    exercise(data, context)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(tail=st.binary(max_size=512))
def test_valid_header_then_random_records(seeds: Seeds, context: Context, tail: bytes) -> None:
    data = seeds[0]
    header_length = int.from_bytes(data[8:10], "big")
    exercise(data[:header_length] + tail, context)


# --- the named cases of the issue ------------------------------------------------------------


def _timed(fn: Callable[[], object], limit: float) -> None:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        fn()
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < limit, f"took {elapsed:.2f}s"
    assert peak < 8 * 1024 * 1024, f"peak allocation {peak} bytes"


@pytest.mark.parametrize(
    "kind", ["random", "zeros", "padding", "ones", "container-magic", "itl-header"]
)
def test_ten_megabytes_of_garbage(seeds: Seeds, kind: str) -> None:
    if kind == "random":
        data = random.Random(10).randbytes(TEN_MB)
    elif kind == "zeros":
        data = bytes(TEN_MB)
    elif kind == "padding":
        data = b"\x0d" * TEN_MB
    elif kind == "ones":
        data = b"\xff" * TEN_MB
    elif kind == "container-magic":
        data = bytes.fromhex("cd3412ab") + random.Random(11).randbytes(TEN_MB)
    else:
        header_length = int.from_bytes(seeds[0][8:10], "big")
        data = seeds[0][:header_length] + random.Random(12).randbytes(TEN_MB)
    parsers = list(PARSERS)
    if kind == "itl-header":  # a valid header before 10 MB is a valid .sgn with a big payload
        parsers = [parse_trust_list, parse_container]
    for parse in parsers:
        with pytest.raises(FormatError) as caught:
            _timed(functools.partial(parse, data), 2.0)
        check_format_error(caught.value, data)


def test_ten_megabytes_of_valid_small_records_are_refused_up_front(seeds: Seeds) -> None:
    header_length = int.from_bytes(seeds[0][8:10], "big")
    record = bytes.fromhex("010002000a 0400020000")
    data = seeds[0][:header_length] + record * (TEN_MB // len(record))
    with pytest.raises(StructureError, match="larger than any trust list") as caught:
        _timed(lambda: parse_trust_list(data), 0.5)
    check_format_error(caught.value, data)


def test_header_length_past_the_end(seeds: Seeds) -> None:
    data = bytearray(seeds[2])
    data[8:10] = u16(len(data) + 1)
    for parse in PARSERS[:3]:
        with pytest.raises(TruncatedError) as caught:
            parse(bytes(data))
        assert caught.value.offset == 5


def test_nesting_that_lies(seeds: Seeds) -> None:
    data = bytearray(seeds[2])
    info = bytes(data).index(b"\x07\x00\x0f")
    # Tag 9 inside tag 7 claims 32 bytes; its container holds only 8.
    assert data[info + 7 : info + 10] == b"\x09\x00\x08"
    data[info + 8 : info + 10] = u16(32)
    with pytest.raises(LengthError) as caught:
        parse_signed(bytes(data))
    assert caught.value.offset == info + 7
    # Tag 7 claims more than the header holds.
    data = bytearray(seeds[2])
    data[info + 1 : info + 3] = u16(0xFFFF)
    with pytest.raises(LengthError):
        parse_signed(bytes(data))


def test_container_of_length_zero(seeds: Seeds) -> None:
    data = bytes(seeds[2])
    signer = data.index(b"\x03", 10)
    assert signer == 10
    length = int.from_bytes(data[11:13], "big")
    bad = bytearray(data[:11] + b"\x00\x00" + data[13 + length :])
    bad[8:10] = u16(int.from_bytes(bad[8:10], "big") - length)
    with pytest.raises(StructureError, match="signer name"):
        parse_signed(bytes(bad))


def test_nesting_too_deep() -> None:
    inner = b"\x04\x00\x01x"
    for _ in range(6):
        inner = b"\x10" + u16(len(inner)) + inner
    data = bytes.fromhex("0100020102 020002") + u16(10 + len(inner)) + inner
    with pytest.raises(StructureError, match="nested more than 4 deep"):
        parse_signed(data)


def test_duplicate_signature_tag(seeds: Seeds) -> None:
    data = bytearray(seeds[2])
    at = bytes(data).index(b"\x0c\x00\x80")
    extra = bytes(data[at : at + 3 + 128])
    data[at:at] = extra
    data[8:10] = u16(int.from_bytes(data[8:10], "big") + len(extra))
    with pytest.raises(StructureError, match="tag 12 appears twice") as caught:
        parse_signed(bytes(data))
    assert caught.value.offset == at + len(extra)


def test_truncated_at_every_length(seeds: Seeds, context: Context) -> None:
    for data in seeds[2:4]:
        for size in range(len(data)):
            exercise(data[:size], context)
