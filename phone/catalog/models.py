"""Phone models: the differences between real models that matter to trust decisions.

A small table, not a class hierarchy: every model is a row, and behaviour reads the row.
Sources are phone-behaviour.md items (cited per field).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from phone.errors import UsageError


class Transport(StrEnum):
    """How a phone fetches files from its TFTP server (item 4)."""

    TFTP = "tftp"
    HTTP = "http"  # HTTP on the TFTP server's port 6970


class ImageFormat(StrEnum):
    """The firmware container a model's loads use (trust-file-formats.md section 10)."""

    LEGACY = "legacy"  # 79xx: TLV-signed header, version 1.1
    CONTAINER = "container"  # 78xx/88xx: the CD 34 12 AB container


@dataclass(frozen=True, slots=True)
class Model:
    """One row of the model table."""

    name: str  # the model number, as in "CP-8841"
    family: str  # "79xx" or "88xx": selects the manufacturing CA and the load family
    transports: tuple[Transport, ...]  # in the order tried (item 4)
    image_format: ImageFormat
    factory_load: str  # the load a new phone of this model runs
    security_by_default: bool  # phones without SBD get an unsigned default config (seed)
    ctl_attempts: int  # item 7: how often a secure-mode phone retries the CTL before giving up
    erase_path: str  # item 46: where a person erases the trust lists on this model
    separate_itl_erase: bool  # item 46: 8945 has no ITL-only erase
    tftp_retries: int = 3  # attempts per file before "TFTP timeout"

    @property
    def device_prefix(self) -> str:
        """The TVS device-name prefix, "CP-<model>" (trust-file-formats.md section 9a)."""
        return f"CP-{self.name}"


_79XX_ERASE = (
    "Settings > Security Configuration > Trust List > ITL File / CTL File, **# unlock, Erase"
)
_88XX_ERASE = "Applications > Admin settings > Reset settings > Security settings"

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            name="7962",
            family="79xx",
            transports=(Transport.TFTP,),  # older 79xx are TFTP only (item 4)
            image_format=ImageFormat.LEGACY,
            factory_load="SIP79xx.9-2-1",
            security_by_default=True,
            ctl_attempts=4,  # 9.x 7900 firmware: four attempts (item 7)
            erase_path=_79XX_ERASE,
            separate_itl_erase=True,
        ),
        Model(
            name="7940",
            family="79xx",
            transports=(Transport.TFTP,),
            image_format=ImageFormat.LEGACY,
            factory_load="SIP79xx.8-3-1",
            security_by_default=False,  # pre-SBD: gets an unsigned default config (seed)
            ctl_attempts=4,
            erase_path=_79XX_ERASE,
            separate_itl_erase=True,
        ),
        Model(
            name="8841",
            family="88xx",
            transports=(Transport.HTTP, Transport.TFTP),  # HTTP 6970 first (item 4)
            image_format=ImageFormat.CONTAINER,
            factory_load="sip88xx.12-0-1",
            security_by_default=True,
            ctl_attempts=4,
            erase_path=_88XX_ERASE,
            separate_itl_erase=False,
        ),
        Model(
            name="8945",
            family="88xx",
            transports=(Transport.HTTP, Transport.TFTP),
            image_format=ImageFormat.CONTAINER,
            factory_load="sip88xx.12-0-1",
            security_by_default=True,
            ctl_attempts=4,
            erase_path="Settings > Reset settings > Security settings (no ITL-only erase)",
            separate_itl_erase=False,
        ),
    )
}

DEFAULT_MODEL = "8841"


def get_model(name: str) -> Model:
    """The model row for ``name`` ("8841", "CP-8841" and "cp-8841" all work)."""
    key = name.upper().removeprefix("CP-")
    try:
        return MODELS[key]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UsageError(f"unknown phone model {name!r}; known models: {known}") from None
