"""The SIP trunk side of a cluster (items 43-44): trunk security profiles, trunks, application
users and SIP realms, read and changed.

A mixin of :class:`phone.cluster.cluster.Cluster`, kept apart because it is its own page of
CUCM's administration (System > Security > SIP Trunk Security Profile, Device > Trunk, User
Management > Application User, SIP Realm) and touches nothing of the phone-side state. Every
change ends in the cluster's ``_commit``, like every other change of a cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from phone.cluster.records import ClusterState
from phone.cluster.trunk import (
    ApplicationUser,
    SipRealm,
    SipTrunk,
    TrunkConfig,
    TrunkSecurityProfile,
)
from phone.errors import LabError

__all__ = ["TrunkAdmin"]


class TrunkAdmin:
    """SIP trunk configuration of a cluster (mixed into :class:`~phone.cluster.cluster.Cluster`).

    The cluster provides ``state``, ``name``, ``revision``, ``note`` and ``_commit``.
    """

    state: ClusterState
    revision: int
    _sip_trunks: tuple[int, tuple[SipTrunk, ...]] | None

    @property
    def name(self) -> str:
        """The cluster's name."""
        return self.state.name

    if TYPE_CHECKING:  # provided by Cluster; declared for the type checker only, no stub

        def note(self, now: datetime, message: str, *, service: str = "CLI") -> None: ...

        def _commit(self, now: datetime, *, itl: bool = False) -> None: ...

    @property
    def trunk_profiles(self) -> Mapping[str, TrunkSecurityProfile]:
        """SIP trunk security profiles by name."""
        return MappingProxyType(self.state.trunk_profiles)

    @property
    def trunks(self) -> Mapping[str, TrunkConfig]:
        """SIP trunks by name, as stored (their profile by name)."""
        return MappingProxyType(self.state.trunks)

    @property
    def application_users(self) -> Mapping[str, ApplicationUser]:
        """Application users by name (digest hash only, never a password)."""
        return MappingProxyType(self.state.application_users)

    @property
    def sip_realms(self) -> Mapping[str, SipRealm]:
        """The SIP Realm credentials the cluster answers trunk challenges with, by realm."""
        return MappingProxyType(self.state.sip_realms)

    def sip_trunks(self) -> tuple[SipTrunk, ...]:
        """Every trunk with its profile resolved, in configuration order (cached per revision;
        what :class:`phone.cluster.registrar.Registrar` matches requests against)."""
        cached = self._sip_trunks
        if cached is not None and cached[0] == self.revision:
            return cached[1]
        profiles = self.state.trunk_profiles
        trunks = tuple(t.resolve(profiles[t.profile]) for t in self.state.trunks.values())
        self._sip_trunks = (self.revision, trunks)
        return trunks

    def trunks_using(self, profile: str) -> tuple[str, ...]:
        """Names of the trunks whose security profile is ``profile``."""
        return tuple(t.name for t in self.state.trunks.values() if t.profile == profile)

    def add_trunk_profile(
        self, profile: TrunkSecurityProfile, *, now: datetime, replace: bool = False
    ) -> TrunkSecurityProfile:
        """Add (or with ``replace`` overwrite) a SIP trunk security profile.

        Replacing a profile changes every trunk that uses it at once, as on CUCM.

        Raises:
            LabError: the name exists and ``replace`` is false.
        """
        if profile.name in self.state.trunk_profiles and not replace:
            raise LabError(f"trunk security profile {profile.name} already exists in {self.name}")
        self.state.trunk_profiles[profile.name] = profile
        self.note(now, f"SIP trunk security profile {profile.name} saved")
        self._commit(now)
        return profile

    def remove_trunk_profile(self, name: str, *, now: datetime) -> None:
        """Delete a SIP trunk security profile.

        Raises:
            LabError: no such profile, or trunks still use it (CUCM refuses that too).
        """
        if name not in self.state.trunk_profiles:
            raise LabError(f"cluster {self.name} has no trunk security profile {name!r}")
        users = self.trunks_using(name)
        if users:
            raise LabError(
                f"trunk security profile {name} is used by trunk {', '.join(users)}: "
                "remove or change those first"
            )
        del self.state.trunk_profiles[name]
        self.note(now, f"SIP trunk security profile {name} removed")
        self._commit(now)

    def add_trunk(self, trunk: TrunkConfig, *, now: datetime, replace: bool = False) -> TrunkConfig:
        """Add (or with ``replace`` overwrite) a SIP trunk.

        Raises:
            LabError: the name exists and ``replace`` is false, the profile does not exist, or
                another trunk already has one of the addresses (the peer would be ambiguous).
        """
        if trunk.name in self.state.trunks and not replace:
            raise LabError(f"trunk {trunk.name} already exists in cluster {self.name}")
        if trunk.profile not in self.state.trunk_profiles:
            raise LabError(
                f"cluster {self.name} has no trunk security profile {trunk.profile!r} "
                "(add it with `vphone lab trunk-profile add`)"
            )
        for other in self.state.trunks.values():
            shared = sorted(trunk.addresses & other.addresses)
            if other.name != trunk.name and shared:
                raise LabError(f"trunk {other.name} already has address {', '.join(shared)}")
        self.state.trunks[trunk.name] = trunk
        addresses = ", ".join(sorted(trunk.addresses))
        self.note(now, f"SIP trunk {trunk.name} saved: {addresses}, profile {trunk.profile}")
        self._commit(now)
        return trunk

    def remove_trunk(self, name: str, *, now: datetime) -> None:
        """Delete a SIP trunk.

        Raises:
            LabError: no such trunk.
        """
        if self.state.trunks.pop(name, None) is None:
            raise LabError(f"cluster {self.name} has no trunk {name!r}")
        self.note(now, f"SIP trunk {name} removed")
        self._commit(now)

    def add_application_user(
        self, user: ApplicationUser, *, now: datetime, replace: bool = False
    ) -> ApplicationUser:
        """Add (or with ``replace`` overwrite) an application user (its HA1, never a password).

        Raises:
            LabError: the name exists and ``replace`` is false.
        """
        if user.name in self.state.application_users and not replace:
            raise LabError(f"application user {user.name} already exists in cluster {self.name}")
        self.state.application_users[user.name] = user
        self.note(now, f"application user {user.name} saved (digest realm {user.realm})")
        self._commit(now)
        return user

    def remove_application_user(self, name: str, *, now: datetime) -> None:
        """Delete an application user.

        Raises:
            LabError: no such user.
        """
        if self.state.application_users.pop(name, None) is None:
            raise LabError(f"cluster {self.name} has no application user {name!r}")
        self.note(now, f"application user {name} removed")
        self._commit(now)

    def add_sip_realm(self, realm: SipRealm, *, now: datetime, replace: bool = False) -> SipRealm:
        """Add (or with ``replace`` overwrite) the SIP Realm credentials for ``realm.realm``.

        Raises:
            LabError: the realm exists and ``replace`` is false (one set per realm, seed).
        """
        if realm.realm in self.state.sip_realms and not replace:
            raise LabError(f"SIP realm {realm.realm} already exists in cluster {self.name}")
        self.state.sip_realms[realm.realm] = realm
        self.note(now, f"SIP realm {realm.realm} saved (user {realm.user})")
        self._commit(now)
        return realm

    def remove_sip_realm(self, realm: str, *, now: datetime) -> None:
        """Delete the SIP Realm credentials for ``realm``.

        Raises:
            LabError: no such realm.
        """
        if self.state.sip_realms.pop(realm, None) is None:
            raise LabError(f"cluster {self.name} has no SIP realm {realm!r}")
        self.note(now, f"SIP realm {realm} removed")
        self._commit(now)
