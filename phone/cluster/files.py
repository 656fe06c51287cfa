"""The TFTP file service of a cluster node: what a phone downloads, by file name.

One :class:`FileService` per TFTP node (``lab.file_service(host)``). A TFTP or HTTP server
(a later issue) calls :meth:`FileService.get` with the requested name and gets the bytes, or
None for "File not found". Pure: no sockets, no clock; randomness for encrypted configs comes
from the cluster's injected ``random``.

Names answered (case-insensitive, leading "/" ignored, like CUCM's TFTP):

=====================================  ==========================================================
``ITLFile.tlv``, ``ITLSEP<MAC>.tlv``   this node's ITL (item 2; the same file for every MAC)
``CTLFile.tlv``, ``CTLSEP<MAC>.tlv``   the tokenless CTL, in mixed mode only
``SEP<MAC>.cnf.xml``                   the device's config, unsigned (the stub when encrypted)
``SEP<MAC>.cnf.xml.sgn``               the same, signed with this node's CallManager key
``SEP<MAC>.cnf.xml.enc.sgn``           encrypted config (devices with config encryption and a
                                       known LSC/MIC), signed
``XMLDefault.cnf.xml`` (``.sgn``)      autoregistration default config, in both modes; the
                                       ``.sgn`` is signed (seed, Autoregistration). Phones
                                       without Security by Default ask for the plain name: the
                                       server answers names, it cannot know a phone's model
``RingList.xml`` (``.sgn``)            static ring list; ``.sgn`` in mixed mode only (seed,
                                       File Authentication: static files signed in mixed mode)
any name in ``cluster.firmware``       firmware loads, served as they are
=====================================  ==========================================================

Before any of these, a node answers from its *served files* (``Lab.serve_file``): bytes a
harness put there to stand in for, or add to, the generated files (docs/harness.md). They are
served exactly as given, whatever the name, and only while the node runs TFTP; a served
``ITLFile.tlv`` (``CTLFile.tlv``) answers the ``ITLSEP<MAC>.tlv`` (``CTLSEP<MAC>.tlv``) names too.

Signed files are cached per name together with what they were made from (payload, signer,
timestamp): a request for an unchanged file costs no signature, a changed one is re-signed
("If the TFTP server verifies that a saved file has changed, the TFTP server re-signs the
file", seed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from phone.errors import VphoneError
from phone.formats.configxml import CAPF_PORT, DeviceConfig, render_config
from phone.formats.signed import build_encrypted, encode_signed, md5_hex

if TYPE_CHECKING:
    from phone.cluster.cluster import Cluster
    from phone.cluster.records import ConfigContext, Device

__all__ = [
    "RING_LIST",
    "ClientInfo",
    "FileService",
    "FileStats",
    "ServedFiles",
    "default_config",
    "device_config",
]

RING_LIST = b"""<?xml version="1.0" encoding="UTF-8"?>
<CiscoIPPhoneRingList>
  <Ring>
    <DisplayName>Chirp1</DisplayName>
    <FileName>Chirp1.raw</FileName>
  </Ring>
  <Ring>
    <DisplayName>Chirp2</DisplayName>
    <FileName>Chirp2.raw</FileName>
  </Ring>
</CiscoIPPhoneRingList>
"""
"""The static ring list every node serves (content of our choosing)."""

ServedFiles = Mapping[str, tuple[str, bytes]]
"""Files a harness serves (``Lab.serve_file``): lower-case name -> (name as given, bytes)."""

_SEP = re.compile(r"sep([0-9a-f]{12})\.cnf\.xml(\.sgn|\.enc\.sgn)?")
_TRUST = re.compile(r"(itl|ctl)(?:file|sep[0-9a-f]{12})\.tlv")
_MAX_NAME = 255


@dataclass(frozen=True)
class ClientInfo:
    """Who is asking: what a TFTP/HTTP server can know about the requester."""

    address: str
    mac: str | None = None
    model: str | None = None


@dataclass
class FileStats:
    """Counters, mostly for benchmarks and tests ("a second request costs no signature")."""

    requests: int = 0
    not_found: int = 0
    signatures: int = 0
    encryptions: int = 0
    cache_hits: int = 0


@dataclass(frozen=True)
class _Cached:
    key: tuple[object, ...]
    data: bytes


@dataclass(frozen=True)
class _Rendered:
    """A device's config bytes and what they were rendered from (see FileService._render)."""

    device: Device
    context: ConfigContext
    full: DeviceConfig
    payload: bytes  # render_config(full)


def device_config(cluster: Cluster, device: Device) -> DeviceConfig:
    """The full configuration of ``device`` in ``cluster``.

    The device security mode is the one of its security profile in mixed mode and
    non-secure (1) otherwise: a cluster without a CTL cannot run TLS to its phones.
    Digest credentials are included unless the device excludes them (item 42).
    """
    context = cluster.config_context()
    mode = int(device.security_mode) if context.mixed_mode else 1
    password = None if device.exclude_digest_credentials else device.digest_password
    return DeviceConfig(
        device_security_mode=mode,
        callmanagers=context.callmanagers,
        tvs_members=context.tvs_members,
        tftp_servers=context.tftp_servers,
        load_information=device.load,
        digest_user=device.digest_user,
        digest_password=password,
        encrypted_config=False,
        capf_host=context.capf_host,
        capf_port=CAPF_PORT,
        # A pending CAPF operation shows as its auth mode; 0 means none (phone.cluster.capf).
        capf_auth_mode=0 if device.capf is None else int(device.capf.auth.code),
        mac=device.mac,
        model=device.model,
    )


def default_config(cluster: Cluster) -> DeviceConfig:
    """``XMLDefault.cnf.xml``: non-secure, no device, the autoregistration CallManager group.

    With autoregistration off no CallManager accepts unknown phones, so the group is empty and
    a phone that fetched it keeps "Registering" (item 6) [G].
    """
    context = cluster.config_context()
    return DeviceConfig(
        callmanagers=context.callmanagers if context.autoregistration else (),
        tvs_members=context.tvs_members,
        tftp_servers=context.tftp_servers,
        capf_host=context.capf_host,
        default=True,
    )


class FileService:
    """The files TFTP node ``host`` of ``cluster`` serves (module docstring)."""

    def __init__(self, cluster: Cluster, host: str, served: Sequence[ServedFiles] = ()) -> None:
        self.cluster = cluster
        self.host = host
        # Served files, most specific first (the node's, then the cluster's): the lab owns
        # the mappings and changes them in place (Lab.serve_file).
        self.served = tuple(served)
        self.stats = FileStats()
        self._cache: dict[str, _Cached] = {}
        self._rendered: dict[str, _Rendered] = {}
        self._firmware_index: tuple[frozenset[str], dict[str, str]] | None = None

    def get(self, filename: str, client: ClientInfo | None = None) -> bytes | None:
        """The bytes served for ``filename``, or None for "File not found". Never raises."""
        self.stats.requests += 1
        try:
            data = self._get(filename, client)
        except (VphoneError, ValueError):
            # A cluster in a state that cannot produce the file (e.g. a non-RSA signer, a
            # device value XML cannot carry): CUCM's TFTP would answer with an error, the
            # phone sees "not found". The contract is that a request never raises.
            data = None
        if data is None:
            self.stats.not_found += 1
        return data

    def forget_device(self, mac: str) -> None:
        """Drop cached files of a deleted device."""
        prefix = f"sep{mac.lower()}."
        for name in [n for n in self._cache if n.startswith(prefix)]:
            del self._cache[name]
        self._rendered.pop(mac, None)

    def names(self) -> tuple[str, ...]:
        """The names this node serves now (devices and firmware included), for listings."""
        cluster = self.cluster
        out: list[str] = []
        if cluster.itl_file(self.host) is not None:
            out.append("ITLFile.tlv")
        if cluster.ctl_file is not None:
            out.append("CTLFile.tlv")
        out += ["XMLDefault.cnf.xml", "XMLDefault.cnf.xml.sgn", "RingList.xml"]
        if cluster.mixed_mode:
            out.append("RingList.xml.sgn")
        for device in cluster.devices.values():
            out += [f"{device.name}.cnf.xml", f"{device.name}.cnf.xml.sgn"]
            if self._encryption_key(device) is not None:
                out.append(f"{device.name}.cnf.xml.enc.sgn")
        out += sorted(cluster.firmware)
        known = {n.lower() for n in out}
        for served in self.served:
            out += sorted(name for key, (name, _) in served.items() if key not in known)
            known.update(served)
        return tuple(out)

    # --- dispatch ----------------------------------------------------------------------------

    def _get(self, filename: str, client: ClientInfo | None) -> bytes | None:
        cluster = self.cluster
        node = cluster.find_node(self.host)
        if node is None or not node.runs_tftp or not node.running:
            return None
        name = filename.lstrip("/")
        if not name or len(name) > _MAX_NAME:
            return None
        key = name.lower()
        trust = _TRUST.fullmatch(key)
        # A served ITLFile.tlv (CTLFile.tlv) also answers ITLSEP<MAC>.tlv, which the phone asks
        # for first: CUCM serves the same file under both names (item 2).
        keys = (key, f"{trust[1]}file.tlv") if trust is not None else (key,)
        for wanted in keys:
            for served in self.served:
                if wanted in served:
                    return served[wanted][1]
        if trust is not None:
            return cluster.itl_file(self.host) if trust[1] == "itl" else cluster.ctl_file
        sep = _SEP.fullmatch(key)
        if sep is not None:
            return self._device_file(sep[1].upper(), sep[2] or "")
        if key in ("xmldefault.cnf.xml", "xmldefault.cnf.xml.sgn"):
            payload = render_config(default_config(cluster))
            if key.endswith(".sgn"):
                # Seed: "The default configuration file will also be signed. Cisco IP Phones
                # that do not support Security by Default will be served a nonsigned default
                # configuration file." A TFTP server cannot know the model of the phone asking:
                # those phones get the plain file because that is the name they request
                # (phone.trust.config.default_config_names).
                return self._signed("XMLDefault.cnf.xml.sgn", payload, None)
            return payload
        if key == "ringlist.xml":
            return RING_LIST
        if key == "ringlist.xml.sgn":
            return self._signed("RingList.xml.sgn", RING_LIST, None) if cluster.mixed_mode else None
        return self._firmware(name)

    def _firmware(self, name: str) -> bytes | None:
        firmware: Mapping[str, bytes] = self.cluster.firmware
        if not firmware:
            return None
        if name in firmware:
            return firmware[name]
        # The lower-case index is valid for the very names it was built from: a catalogue
        # replaced by another of the same size must not answer from the old one's names.
        index = self._firmware_index
        if index is None or index[0] != firmware.keys():
            index = (frozenset(firmware), {n.lower(): n for n in firmware})
            self._firmware_index = index
        real = index[1].get(name.lower())
        return None if real is None else firmware.get(real)

    def _encryption_key(self, device: Device) -> rsa.RSAPublicKey | None:
        if not device.encrypt_config or device.certificate is None:
            return None
        key = device.certificate.public_key()
        return key if isinstance(key, rsa.RSAPublicKey) else None

    def _device_file(self, mac: str, suffix: str) -> bytes | None:
        cluster = self.cluster
        device = cluster.device(mac)
        if device is None:
            return None  # unknown phones fall back to XMLDefault.cnf.xml (item 6)
        rendered = self._render(device)
        full = rendered.full
        base = f"{device.name}.cnf.xml"
        if device.encrypt_config:
            recipient = self._encryption_key(device)
            cert_hash = (
                None
                if device.certificate is None
                else md5_hex(device.certificate.public_bytes(Encoding.DER))
            )
            # Section 8: the plain names carry only the stub; the credentials travel encrypted.
            stub = render_config(full.stub(cert_hash))
            if suffix == "":
                return stub
            if suffix == ".sgn":
                return self._signed(base + ".sgn", stub, device)
            if recipient is None:
                return None  # no LSC/MIC known yet: nothing to encrypt to
            return self._encrypted(base + ".enc.sgn", rendered.payload, device, recipient)
        payload = rendered.payload
        if suffix == "":
            return payload
        if suffix == ".sgn":
            return self._signed(base + ".sgn", payload, device)
        return None  # .enc.sgn only exists for devices with config encryption

    def _render(self, device: Device) -> _Rendered:
        """``device_config`` and its rendering, remembered per device.

        A device's config is a function of its record (a frozen Device, replaced on every
        change) and of the cluster's config context (a frozen ConfigContext, recomputed only
        when one of its inputs changes), and rendering is deterministic; so while both are the
        very same objects the bytes are the same, and every boot of the phone does not render
        them again.
        """
        context = self.cluster.config_context()
        cached = self._rendered.get(device.mac)
        if cached is not None and cached.device is device and cached.context is context:
            return cached
        full = device_config(self.cluster, device)
        rendered = _Rendered(device, context, full, render_config(full))
        self._rendered[device.mac] = rendered
        return rendered

    # --- signing with a cache ----------------------------------------------------------------

    def _signed(self, name: str, payload: bytes, device: Device | None) -> bytes:
        cluster = self.cluster
        signer = cluster.config_signer(self.host)
        timestamp = cluster.config_timestamp(device)
        digest = cluster.profile.digest
        key = ("sgn", payload, signer.serial, signer.issuer, timestamp, int(digest))
        cached = self._cache.get(name.lower())
        if cached is not None and cached.key == key:
            self.stats.cache_hits += 1
            return cached.data
        # The bytes build_signed gives, from a header laid out once per signer (issue 17).
        data = encode_signed(payload, signer, filename=name, timestamp=timestamp, digest=digest)
        self.stats.signatures += 1
        self._cache[name.lower()] = _Cached(key, data)
        return data

    def _encrypted(
        self, name: str, plaintext: bytes, device: Device, recipient: rsa.RSAPublicKey
    ) -> bytes:
        cluster = self.cluster
        signer = cluster.config_signer(self.host)
        timestamp = cluster.config_timestamp(device)
        digest = cluster.profile.digest
        assert device.certificate is not None
        fingerprint = device.certificate.fingerprint(hashes.SHA256())
        key = ("enc", plaintext, signer.serial, signer.issuer, timestamp, int(digest), fingerprint)
        cached = self._cache.get(name.lower())
        if cached is not None and cached.key == key:
            self.stats.cache_hits += 1
            return cached.data
        data = build_encrypted(
            plaintext,
            signer,
            recipient,
            filename=name,
            timestamp=timestamp,
            digest=digest,
            aes_key=cluster.random(16),
            iv=cluster.random(16),
        ).encode()
        self.stats.signatures += 1
        self.stats.encryptions += 1
        self._cache[name.lower()] = _Cached(key, data)
        return data
