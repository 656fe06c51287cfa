"""The row type of the model table and its enums (the table is :mod:`phone.catalog.table`).

A table, not a class hierarchy: every model is a row, and behaviour reads the row. Every row
carries its sources (per field, a citation of Cisco's documentation, a field report or a
phone-behaviour.md item) and the set of fields that are guesses ([G]); docs/models.md lists the
guesses with what would confirm each.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Transport(StrEnum):
    """How a phone fetches files from its TFTP server (item 4)."""

    TFTP = "tftp"
    HTTP = "http"  # HTTP on the TFTP server's port 6970


class ImageFormat(StrEnum):
    """The firmware container a model's loads use (trust-file-formats.md section 10)."""

    LEGACY = "legacy"  # .loads/.sbn/.sbin/.zz.sgn: the TLV-signed header, version 1.1 (10a)
    CONTAINER = "container"  # 78xx/88xx: the CD 34 12 AB container (10b)


class StatusKey(StrEnum):
    """The events whose status text differs between families (item 47)."""

    IMAGE_AUTH = "image-auth"  # an image whose signature the running firmware cannot verify
    BOTH_LISTS = "both-lists"  # one boot installed a first CTL and a first ITL (item 10)
    # A signed config whose signature no trust list vouches for (item 14); ``{file}`` is the
    # file's name. The 79xx say "File auth error <file>"; the 8945 logs its own line [S21].
    CONFIG_AUTH = "config-auth"


# The fields of a row a source or a [G] mark can name (the JSON keys of ``vphone model show``).
FIELDS = (
    "family",
    "security_by_default",
    "ctl",
    "tvs",
    "protocols",
    "loads",
    "image_format",
    "key_rollover",
    "config_files",
    "ec_itl11",
    "tls",
    "ctl_attempts",
    "erase_path",
    "statuses",
    "web_fields",
    "transports",
)


@dataclass(frozen=True, slots=True)
class Model:
    """One row of the model table (fields cited in :mod:`phone.catalog.table`)."""

    name: str  # the model number, as in "CP-8841"
    family: str  # the family as Cisco groups its documents and loads, e.g. "7942/7962"
    load_family: str  # the hardware an image is built for (its payload's FAMILY=, item 39)
    mic_family: str  # "79xx" or "88xx": the emulated manufacturing CA that issued its MIC
    transports: tuple[Transport, ...]  # in the order tried (item 4)
    image_format: ImageFormat
    factory_load: str  # the load a new phone of this model runs
    default_load: str  # the newest load of the catalogue: the cluster's default for the model
    loads: tuple[str, ...]  # every catalogue load of this hardware, oldest first
    security_by_default: bool  # phones without SBD ignore the ITL (seed, Autoregistration)
    ctl: bool  # the phone fetches and installs a CTL (item 2)
    tvs: bool  # the phone asks TVS about unknown signers (item 20)
    protocols: tuple[str, ...]  # "SCCP", "SIP" (default_protocol: SIP where both)
    config_files: tuple[str, ...]  # the names it requests, in order
    ec_itl11: bool  # EC keys and ITL 1.1 (the HTTPS 6971 config path of item 4)
    tls: tuple[str, ...]  # the TLS versions it speaks
    ctl_attempts: int  # item 7: how often a secure-mode phone retries the CTL before giving up
    erase_path: str  # item 46: where a person erases the trust lists on this model
    separate_itl_erase: bool  # item 46: the 8945 and the 78xx/88xx have no ITL-only erase
    statuses: tuple[tuple[StatusKey, str], ...]  # texts where the family differs (item 47)
    web_fields: tuple[str, ...]  # item 48: the device page's security fields
    key_rollover: str  # the image-signing-key step its loads need, "" when none is known
    sources: tuple[tuple[str, str], ...]  # field -> citation
    guesses: frozenset[str]  # the fields that are guesses [G]
    tftp_retries: int = 3  # attempts per file before "TFTP timeout"

    @property
    def default_protocol(self) -> str:
        """The protocol a phone of this model registers with unless told otherwise: SIP where
        the model runs both (vphone's default, docs/sccp.md), else its only one."""
        return "SIP" if "SIP" in self.protocols or not self.protocols else self.protocols[0]

    def protocol(self, name: str | None) -> str:
        """``name`` ("sip", "SCCP") checked against the row; the default when None.

        Raises:
            ValueError: the model does not run that protocol.
        """
        if name is None:
            return self.default_protocol
        wanted = name.upper()
        if wanted not in self.protocols:
            runs = ", ".join(self.protocols)
            raise ValueError(f"the {self.name} does not run {wanted} (it runs {runs})")
        return wanted

    @property
    def device_prefix(self) -> str:
        """The TVS device-name prefix, "CP-<model>" (trust-file-formats.md section 9a)."""
        return f"CP-{self.name}"

    def status(self, key: StatusKey) -> str | None:
        """The text this model shows for ``key``, or None when it shows none."""
        return dict(self.statuses).get(key)

    def source(self, field: str) -> str:
        """The citation for ``field`` ("" when the row cites none; then it is a guess)."""
        return dict(self.sources).get(field, "")

    def view(self) -> dict[str, object]:
        """The row as JSON-ready data (``vphone model show --json``)."""
        return {
            "model": self.name,
            "family": self.family,
            "security_by_default": self.security_by_default,
            "ctl": self.ctl,
            "tvs": self.tvs,
            "protocols": list(self.protocols),
            "loads": list(self.loads),
            "factory_load": self.factory_load,
            "default_load": self.default_load,
            "image_format": self.image_format.value,
            "key_rollover": self.key_rollover,
            "config_files": list(self.config_files),
            "ec_itl11": self.ec_itl11,
            "tls": list(self.tls),
            "ctl_attempts": self.ctl_attempts,
            "erase_path": self.erase_path,
            "separate_itl_erase": self.separate_itl_erase,
            "statuses": {k.value: v for k, v in self.statuses},
            "web_fields": list(self.web_fields),
            "transports": [t.value for t in self.transports],
            "sources": dict(self.sources),
            "guesses": sorted(self.guesses),
        }
