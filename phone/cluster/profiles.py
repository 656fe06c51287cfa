"""Release profiles: how the emulated Unified CM's behaviour changes between releases.

Every version-dependent rule of the cluster reads a field of :class:`ReleaseProfile`; no other
module compares version strings (phone-behaviour caveat: "version-dependent behaviour must be
parameters, not constants").

=============  ===============  ===============  ================  ==============  ===========
profile        ITL signer       tokenless CTL    ``itl reset       ITL hash        ITLRecovery
                                signer           localkey`` signs  report (14+)    validity
=============  ===============  ===============  ================  ==============  ===========
``8.x-11.5``   CallManager of   publisher's      ITLRecovery       no              5 years
               the TFTP node    CallManager
``12.x``       ITLRecovery      ITLRecovery      CallManager       no              5 years
``14.x``       ITLRecovery      ITLRecovery      CallManager       yes             5/10/15/20
=============  ===============  ===============  ================  ==============  ===========

Sources: seed (ITL signed by "the TFTP server's private key"; ITLRecovery validity extended to
5/10/15/20 years; ITL File Status), phone-behaviour items 26-30, trust-file-formats.md section 3
("Who signs"). The ``8.x-11.5`` profile also carries an ITLRecovery record in its ITL, although
8.x/9.x had none (ITLRecovery appeared in 10.0): the seed lists it, and it only matters to
``itl-reset localkey`` (item 29, 10.x behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from phone.errors import LabError
from phone.formats.header import Digest
from phone.pki import CertKind

__all__ = ["ALIASES", "DEFAULT_PROFILE", "PROFILES", "ReleaseProfile", "get_profile"]


@dataclass(frozen=True)
class ReleaseProfile:
    """The release-dependent behaviour of a cluster."""

    name: str
    description: str
    itl_signer: CertKind
    """Which certificate signs each TFTP node's ITL: that node's CallManager, or ITLRecovery."""
    ctl_signer: CertKind
    """Which certificate signs the tokenless CTL (publisher's CallManager, or ITLRecovery)."""
    itl_reset_signer: CertKind
    """``utils itl reset localkey``: the *other* SAST key phones already trust (item 29)."""
    itl_hash_report: bool
    """Phones report their ITL hash at registration; ITL File Status exists (item 30)."""
    itlrecovery_years: tuple[int, ...]
    """ITLRecovery validities the release offers (seed: 5 years, later 5/10/15/20)."""
    digest: Digest = Digest.SHA1
    """Hash of every signature the cluster makes (trust lists, ``.sgn``); SHA-1 in every sample
    seen (trust-file-formats.md section 2), so one field to change when evidence appears."""


PROFILES: MappingProxyType[str, ReleaseProfile] = MappingProxyType(
    {
        p.name: p
        for p in (
            ReleaseProfile(
                name="8.x-11.5",
                description="ITL signed by each TFTP node's CallManager key (items 26-27)",
                itl_signer=CertKind.CALLMANAGER,
                ctl_signer=CertKind.CALLMANAGER,
                itl_reset_signer=CertKind.ITLRECOVERY,
                itl_hash_report=False,
                itlrecovery_years=(5,),
            ),
            ReleaseProfile(
                name="12.x",
                description="ITL and tokenless CTL signed by ITLRecovery (item 28)",
                itl_signer=CertKind.ITLRECOVERY,
                ctl_signer=CertKind.ITLRECOVERY,
                itl_reset_signer=CertKind.CALLMANAGER,
                itl_hash_report=False,
                itlrecovery_years=(5,),
            ),
            ReleaseProfile(
                name="14.x",
                description="12.x plus ITL File Status: phones report their ITL hash (item 30)",
                itl_signer=CertKind.ITLRECOVERY,
                ctl_signer=CertKind.ITLRECOVERY,
                itl_reset_signer=CertKind.CALLMANAGER,
                itl_hash_report=True,
                itlrecovery_years=(5, 10, 15, 20),
            ),
        )
    }
)
"""Every release profile by name."""

DEFAULT_PROFILE = "14.x"

ALIASES: MappingProxyType[str, str] = MappingProxyType(
    {
        # The spellings people use for a release (issue 18 item 3), each to the profile whose
        # rules it follows. 15 changed none of the trust rules modelled here [G]: 14.x's.
        "8.x": "8.x-11.5",
        "10.5": "8.x-11.5",
        "11": "8.x-11.5",
        "11.5": "8.x-11.5",
        "12": "12.x",
        "12.5": "12.x",
        "14": "14.x",
        "15": "14.x",
        "15.x": "14.x",
    }
)
"""Other names of the release profiles (``vphone lab init --release 12.5``, scenario files)."""


def get_profile(name: str) -> ReleaseProfile:
    """The profile of release ``name``: a profile name or an alias (``"12.5"``, ``"15"``).

    Raises:
        LabError: no such profile.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key in PROFILES:
        return PROFILES[key]
    if key + ".x" in PROFILES:
        return PROFILES[key + ".x"]
    for profile in PROFILES.values():
        low, _, high = profile.name.partition("-")
        if key in (low, high, low.removesuffix(".x")):
            return profile
    known = ", ".join([*PROFILES, *ALIASES])
    raise LabError(f"unknown release {name!r} (known: {known})")
