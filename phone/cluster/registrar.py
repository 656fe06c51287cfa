"""The SIP registrar of a cluster node, pure: a request, its source and ``now`` in, a response out.

Used by the in-memory backend (:mod:`phone.net.memory`) and the socket servers
(:mod:`phone.net.sip`) alike, so a phone meets the same challenges with or without sockets.

Why this module is longer than 600 lines: the line side and the trunk side share one request
pipeline (identify, throttle, challenge, check the nonce, answer) and its nonce store; the rules
shared with SCCP are in :mod:`phone.cluster.signaling`, the throttle in
:mod:`phone.cluster.authguard`.

Line side (phones; items 1, 7, 30, 40-42)
-----------------------------------------

1. **Which device.** A Cisco phone names its MAC in the Contact's ``+sip.instance``; a
   third-party client is identified by its digest user ID, as CUCM does for RFC 3261 phones:
   without credentials it is challenged first. Unknown phones auto-register when the
   ``autoregistration`` parameter is on (item 6), else get 404.
2. **Signaling authentication** (seed; item 7). A device whose security mode is authenticated
   or encrypted (in a mixed-mode cluster) must come over TLS with a certificate issued by a
   CAPF-trust anchor (its MIC or LSC) naming ``SEP<MAC>``; else 403.
3. **Digest** (items 40-42), when the device's security profile enables it: every request but
   keepalives is challenged with 401, realm = the ``sip-station-realm`` parameter (default
   ``ccmsipline``), a fresh nonce, ``qop="auth"``, MD5. The answer is checked against HA1 =
   MD5(user:realm:password), which the registrar derives from the device record and keeps
   (never the password itself); the comparison is constant-time. A nonce older than
   ``nonce-validity`` seconds (default 600) gets a fresh 401 with ``stale=true`` (item 41); a
   nonce-count not above the last one seen for that nonce is a replay and gets 403. Digest on
   but no credentials on the device record: 403 (item 42).
4. **Keepalives** are not challenged. What counts as one here: an OPTIONS request (the SIP
   "ping") and the RFC 5626 CRLF ping of a stream (answered by the socket server). A REGISTER
   refresh is *not* a keepalive: it changes the binding and is challenged like the first.
5. **REGISTER** then calls :meth:`Cluster.register` with the ITL report of item 30 (the
   emulated ``X-Cisco-ITL-Hash`` header, :mod:`phone.wire.sip`) and answers 200 with the
   granted Expires; ``Expires: 0`` unregisters (:meth:`Cluster.unregister`, which deletes the
   device's ITL File Status row). Other authenticated requests get 501: the emulation does
   not route calls.

Trunk side (items 43-44): a request whose source address belongs to a :class:`SipTrunk` goes
through the trunk's ACL first (403 for a request type its profile does not allow), then digest
(401 or 407, realm = the Cluster ID), then application-level authorization (403 when the
authenticated application user may not send that request type).

Where the trunk side comes from. The registrar reads the cluster's trunks, application users
and SIP realms (:meth:`Cluster.sip_trunks`, :attr:`Cluster.application_users`,
:attr:`Cluster.sip_realms`: what ``vphone lab trunk ...`` configured and the lab folder keeps)
at every request, so a change to the cluster applies at once. The constructor's ``trunks``,
``application_users`` and ``sip_realms`` (tests, tools) come on top, by this rule: an explicit
entry *overrides* the cluster's entry of the same name (realm, for SIP realms) and otherwise
*extends* them. Among trunks whose addresses contain the source address, the most specific
address (longest prefix) wins; on a tie, explicit trunks come before the cluster's, and within
each, configuration order decides.

Every refusal carries a ``Warning: 399 <host> "<why>"`` header naming the rule, so the phone
and a person reading a capture can tell a wrong password from a stale nonce.

Guessing (issue 13; ``docs/sip.md``, "Guessing digest passwords"). A wrong password, a digest
user no device (or application user) has, and a digest user that is not the device's all get
the *same* answer: ``403 Forbidden`` with ``Warning: 399 <host> "wrong digest credentials"``
(an unknown user is checked against a decoy HA1, so it goes through the same nonce rules: a
fresh 401 for an unknown or foreign-realm nonce, ``stale=false`` for an expired one). What
really happened goes to the cluster log with the source, the user and the time. After
``sip-auth-failures`` failures from one address within ``sip-auth-lockout`` seconds, that
address gets ``403`` with ``Retry-After`` for every request but keepalives until the lockout
ends, its credentials unchecked (:mod:`phone.cluster.authguard`); other addresses are not
affected.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from phone.cluster.cluster import Cluster
from phone.cluster.records import Device, RandomBytes, unix_time
from phone.cluster.signaling import ItlReportValue, Source, signaling_problem
from phone.cluster.trunk import ApplicationUser, SipRealm, SipTrunk, answer_as_uac, request_type
from phone.errors import LabError, ProtocolError
from phone.wire.sip import (
    ITL_HEADER,
    Challenge,
    Credentials,
    SipRequest,
    SipResponse,
    digest_ha1,
    digest_response,
    instance_mac,
    make_response,
    parse_credentials,
    parse_itl_report,
    parse_name_addr,
    parse_via,
    quote,
)

MAX_EXPIRES = 3600  # granted at most; a phone asking for more gets this
NONCE_LIMIT = 20_000  # nonces remembered per registrar (oldest dropped first)
TRANSACTION_LIMIT = 2_048  # responses remembered for retransmissions
TRANSACTION_TIME = 32  # 64*T1 seconds: how long a retransmission gets the same answer

__all__ = ["ItlReportValue", "Registrar", "Source"]


@dataclass(slots=True)
class _Nonce:
    realm: str
    issued: int
    last_nc: int = 0


WRONG_CREDENTIALS = "wrong digest credentials"  # the one answer to every failed guess


class _Refused(Exception):
    """Internal: a request refused with ``response``."""

    def __init__(self, response: SipResponse) -> None:
        self.response = response
        super().__init__(response.reason)


class Registrar:
    """The SIP registrar of node ``host`` of ``cluster`` (module docstring).

    ``random`` makes nonces and tags (the cluster's source when omitted). ``trunks``,
    ``application_users`` and ``sip_realms`` override or extend the cluster's (module
    docstring, "Where the trunk side comes from"). Not thread-safe: the socket servers
    serialize calls to :meth:`handle`.
    """

    def __init__(
        self,
        cluster: Cluster,
        host: str,
        *,
        random: RandomBytes | None = None,
        trunks: Sequence[SipTrunk] = (),
        application_users: Sequence[ApplicationUser] = (),
        sip_realms: Sequence[SipRealm] = (),
    ) -> None:
        self.cluster = cluster
        self.host = cluster.node(host).hostname
        self.random = random if random is not None else cluster.random
        self._trunks = tuple(trunks)
        self._application_users = {u.name: u for u in application_users}
        self._sip_realms = {r.realm: r for r in sip_realms}
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()
        self._transactions: OrderedDict[tuple[str, ...], tuple[int, SipResponse]] = OrderedDict()
        self._ha1: dict[tuple[str, str, str, str], str] = {}
        # Unknown users are checked against HA1 = MD5(user:realm:<this secret>): never a match.
        self._decoy = self.random(16).hex()
        self.challenges = 0  # counters for benchmarks and tests
        self.accepted = 0
        self.refused = 0

    # --- the trunk side: the cluster's, overridden or extended by the constructor's ----------

    @property
    def trunks(self) -> tuple[SipTrunk, ...]:
        """Explicit trunks first, then the cluster's whose name no explicit trunk takes."""
        own = self.cluster.sip_trunks()
        if not self._trunks:
            return own
        taken = {t.name for t in self._trunks}
        return self._trunks + tuple(t for t in own if t.name not in taken)

    @property
    def application_users(self) -> Mapping[str, ApplicationUser]:
        """The cluster's application users, explicit ones replacing those of the same name."""
        own = self.cluster.application_users
        if not self._application_users:
            return own
        return {**own, **self._application_users}

    @property
    def sip_realms(self) -> Mapping[str, SipRealm]:
        """The cluster's SIP realms, explicit ones replacing those for the same realm."""
        own = self.cluster.sip_realms
        if not self._sip_realms:
            return own
        return {**own, **self._sip_realms}

    def trunk_for(self, host: str) -> SipTrunk | None:
        """The trunk a request from ``host`` belongs to (longest prefix; module docstring)."""
        best: SipTrunk | None = None
        best_length = -1
        for trunk in self.trunks:
            length = trunk.match(host)
            if length is not None and length > best_length:
                best, best_length = trunk, length
        return best

    def answer_as_uac(
        self, request: SipRequest, response: SipResponse, *, peer: str
    ) -> SipRequest | None:
        """The node as UAC: the request to resend after ``response`` (a 401/407), or None.

        Toward a trunk (``peer="trunk"``) the answer uses the SIP Realm credentials configured
        for the challenge's realm (item 43; seed, Digest Authentication for Trunks); toward a
        line-side phone (``peer="line"``) a challenge is never answered (item 40). See
        :func:`phone.cluster.trunk.answer_as_uac`.
        """
        return answer_as_uac(
            request,
            response,
            peer=peer,
            realms=tuple(self.sip_realms.values()),
            cnonce=self.random(8).hex(),
        )

    # --- entry point -------------------------------------------------------------------------

    def handle(self, request: SipRequest, source: Source, now: datetime) -> SipResponse | None:
        """The response to ``request`` (None for ACK, which is never answered)."""
        if request.method == "ACK":
            return None
        stamp = unix_time(now)
        key = (source.transport, source.host, str(source.port), *self._transaction_key(request))
        cached = self._transactions.get(key)
        if cached is not None and stamp - cached[0] <= TRANSACTION_TIME:
            return cached[1]  # a retransmission: the same answer, no second nc check
        try:
            response = self._dispatch(request, source, now)
        except _Refused as refused:
            response = refused.response
        except ProtocolError as exc:
            response = self._refuse(request, 400, "Bad Request", str(exc))
        if response.status in (401, 407):
            self.challenges += 1
        elif response.status < 300:
            self.accepted += 1
        else:
            self.refused += 1
        self._transactions[key] = (stamp, response)
        while len(self._transactions) > TRANSACTION_LIMIT:
            self._transactions.popitem(last=False)
        return response

    @staticmethod
    def _transaction_key(request: SipRequest) -> tuple[str, ...]:
        branch = parse_via(request.header("Via")).branch or ""
        number, method = request.cseq
        return (branch, request.call_id, str(number), method)

    # --- helpers -----------------------------------------------------------------------------

    def _tag(self) -> str:
        return self.random(4).hex()

    def _refuse(self, request: SipRequest, status: int, reason: str, why: str) -> SipResponse:
        warning = f"399 {self.host} {quote(why)}"
        return make_response(
            request, status, reason, headers=(("Warning", warning),), to_tag=self._tag()
        )

    def _challenge(
        self, request: SipRequest, realm: str, now: int, *, code: int = 401, stale: bool = False
    ) -> SipResponse:
        nonce = self.random(16).hex()
        self._nonces[nonce] = _Nonce(realm, now)
        self._prune(now)
        header = "WWW-Authenticate" if code == 401 else "Proxy-Authenticate"
        reason = "Unauthorized" if code == 401 else "Proxy Authentication Required"
        challenge = Challenge(realm, nonce, stale=stale)
        return make_response(
            request, code, reason, headers=((header, challenge.render()),), to_tag=self._tag()
        )

    def _prune(self, now: int) -> None:
        # Expired nonces are kept for a second validity period so that they can still be
        # reported as stale (item 41) rather than unknown.
        horizon = 2 * self.cluster.parameters.nonce_validity
        while self._nonces:
            first = next(iter(self._nonces.values()))
            if now - first.issued <= horizon and len(self._nonces) <= NONCE_LIMIT:
                break
            self._nonces.popitem(last=False)

    def _verify(
        self,
        request: SipRequest,
        *,
        realm: str,
        user: str,
        ha1: str,
        now: int,
        source: Source,
        code: int = 401,
        unknown: str | None = None,
    ) -> None:
        """Check the request's digest credentials for ``user``; raise _Refused if not good.

        ``unknown``: the user is not one the cluster has (``ha1`` is a decoy) and this is why,
        for the log; the answer is that of a wrong password (module docstring, "Guessing").
        """
        header = "Authorization" if code == 401 else "Proxy-Authorization"
        value = request.get(header)
        if value is None:
            raise _Refused(self._challenge(request, realm, now, code=code))
        credentials = parse_credentials(value)
        if credentials.realm != realm:
            # Credentials computed for another realm prove nothing here: challenge again.
            raise _Refused(self._challenge(request, realm, now, code=code))
        if credentials.username != user:
            # Not the device's digest user: answered as a wrong password, so that the answer
            # names no user; the log says which user was expected.
            raise self._failed(
                request,
                source,
                credentials.username,
                f"not the digest user of this device ({user!r})",
                now,
            )
        if credentials.qop != "auth":
            raise _Refused(self._refuse(request, 400, "Bad Request", "digest qop=auth is required"))
        if credentials.uri != request.uri:
            raise _Refused(
                self._refuse(
                    request, 400, "Bad Request", "digest uri does not match the Request-URI"
                )
            )
        nonce = self._nonces.get(credentials.nonce)
        if nonce is None or nonce.realm != realm:
            raise _Refused(self._challenge(request, realm, now, code=code))
        good = _good_response(credentials, ha1, request.method) and unknown is None
        why = unknown or "wrong password"
        if now - nonce.issued > self.cluster.parameters.nonce_validity:
            # Item 41: an expired nonce is answered with a fresh one; stale=true tells the
            # client that its credentials were right, so it retries without asking the user.
            challenge = self._challenge(request, realm, now, code=code, stale=good)
            if not good:
                self._failed(request, source, user, f"{why} (with an expired nonce)", now)
            raise _Refused(challenge)
        if not good:
            raise self._failed(request, source, user, why, now)
        nc = int(credentials.nc or "0", 16)
        if nc <= nonce.last_nc:
            raise _Refused(
                self._refuse(
                    request,
                    403,
                    "Forbidden",
                    f"nonce count {nc:08x} replayed (last seen {nonce.last_nc:08x})",
                )
            )
        nonce.last_nc = nc
        self.cluster.sip_auth_succeeded(source.host)

    def _failed(
        self, request: SipRequest, source: Source, user: str, why: str, now: int
    ) -> _Refused:
        """Record a failed authentication (cluster log, throttle); the one answer to it."""
        where = f"{source.host}:{source.port}/{source.transport}"
        self.cluster.sip_auth_failed(source.host, where, user, why, now, node=self.host)
        return _Refused(self._refuse(request, 403, "Forbidden", WRONG_CREDENTIALS))

    def _decoy_ha1(self, user: str, realm: str) -> str:
        return digest_ha1(user, realm, self._decoy)

    # --- dispatch ----------------------------------------------------------------------------

    def _dispatch(self, request: SipRequest, source: Source, now: datetime) -> SipResponse:
        trunk = self.trunk_for(source.host)
        if trunk is None and request.method == "OPTIONS":
            # A keepalive: never challenged (item 40), nor throttled (it proves nothing).
            return make_response(
                request,
                200,
                "OK",
                headers=(("Allow", "REGISTER, OPTIONS, ACK"),),
                to_tag=self._tag(),
            )
        stamp = unix_time(now)
        throttled = self.cluster.sip_auth_throttled(source.host, stamp, node=self.host)
        if throttled is not None:
            # Refused unread: while throttled, not even the right password is checked.
            wait = throttled.until - stamp
            return make_response(
                request,
                403,
                "Forbidden",
                headers=(
                    ("Retry-After", str(wait)),
                    (
                        "Warning",
                        f"399 {self.host} "
                        + quote(
                            f"too many failed digest authentications from {throttled.source}; "
                            f"retry in {wait} s"
                        ),
                    ),
                ),
                to_tag=self._tag(),
            )
        if trunk is not None:
            return self._trunk(request, trunk, source, now)
        return self._line(request, source, now)

    def _line(self, request: SipRequest, source: Source, now: datetime) -> SipResponse:
        stamp = unix_time(now)
        cluster = self.cluster
        realm = cluster.parameters.sip_station_realm
        device = self._identify(request, realm, stamp, source)
        if device is None:
            return self._unknown(request, now)
        self._check_signaling(request, device, source, now)
        if device.digest_authentication:
            if device.digest_user is None or device.digest_password is None:
                raise _Refused(
                    self._refuse(
                        request,
                        403,
                        "Forbidden",
                        f"digest authentication is on for {device.name} but no digest "
                        "credentials are configured (item 42)",
                    )
                )
            self._verify(
                request,
                realm=realm,
                user=device.digest_user,
                ha1=self._device_ha1(device, realm),
                now=stamp,
                source=source,
            )
        if request.method != "REGISTER":
            return self._refuse(
                request, 501, "Not Implemented", "the emulated cluster does not route requests"
            )
        return self._register(request, device.mac, now)

    def _identify(self, request: SipRequest, realm: str, now: int, source: Source) -> Device | None:
        """The device record the request comes from (module docstring, step 1)."""
        for contact in request.get_all("Contact"):
            if contact.strip() == "*":
                continue
            mac = instance_mac(contact)
            if mac is not None:
                device = self.cluster.device(mac)
                if device is None:
                    return None
                return device
        # A third-party client: identified by its digest user ID (CUCM's rule for RFC 3261
        # phones), so it must present credentials first.
        value = request.get("Authorization")
        if value is None:
            raise _Refused(self._challenge(request, realm, now))
        username = parse_credentials(value).username
        for device in self.cluster.devices.values():
            if device.digest_user == username:
                return device
        # No device has that digest user: answered exactly as a wrong password would be.
        self._verify(
            request,
            realm=realm,
            user=username,
            ha1=self._decoy_ha1(username, realm),
            now=now,
            source=source,
            unknown="no device has this digest user",
        )
        raise self._failed(request, source, username, "no device has this digest user", now)

    def _unknown(self, request: SipRequest, now: datetime) -> SipResponse:
        """A Cisco phone the cluster does not know: auto-registration or 404 (item 6)."""
        contact = next((c for c in request.get_all("Contact") if instance_mac(c) is not None), None)
        assert contact is not None
        mac = instance_mac(contact)
        assert mac is not None
        if not self.cluster.parameters.autoregistration or request.method != "REGISTER":
            if request.method == "REGISTER":
                self.cluster.register(mac, now=now)  # logs the rejection
            return self._refuse(
                request,
                404,
                "Not Found",
                f"SEP{mac} is not configured and auto-registration is disabled",
            )
        return self._register(request, mac, now)

    def _check_signaling(
        self, request: SipRequest, device: Device, source: Source, now: datetime
    ) -> None:
        """Seed, Signaling Authentication: secure devices over TLS with their own certificate
        (:func:`phone.cluster.signaling.signaling_problem`, shared with SCCP)."""
        problem = signaling_problem(self.cluster, device, source, now)
        if problem is not None:
            raise _Refused(self._refuse(request, 403, "Forbidden", problem))

    def _device_ha1(self, device: Device, realm: str) -> str:
        assert device.digest_user is not None and device.digest_password is not None
        # The credential store: HA1 per (device, user, realm, record version), derived once.
        key = (device.mac, device.digest_user, realm, str(device.changed_at))
        ha1 = self._ha1.get(key)
        if ha1 is None:
            if len(self._ha1) > NONCE_LIMIT:
                self._ha1.clear()
            ha1 = digest_ha1(device.digest_user, realm, device.digest_password)
            self._ha1[key] = ha1
        return ha1

    def _register(self, request: SipRequest, mac: str, now: datetime) -> SipResponse:
        expires = _requested_expires(request)
        if expires == 0:
            self.cluster.unregister(mac, now=now)
            return make_response(
                request, 200, "OK", headers=(("Expires", "0"),), to_tag=self._tag()
            )
        report: ItlReportValue | None = None
        raw = request.get(ITL_HEADER)
        if raw is not None:
            report = ItlReportValue(*parse_itl_report(raw))
        try:
            outcome = self.cluster.register(mac, now=now, model=_model(request), itl_report=report)
        except LabError as exc:
            return self._refuse(request, 403, "Forbidden", str(exc))
        if not outcome.accepted:
            return self._refuse(request, 403, "Forbidden", outcome.reason)
        granted = min(expires, MAX_EXPIRES)
        contacts = tuple(("Contact", c) for c in request.get_all("Contact"))
        return make_response(
            request,
            200,
            "OK",
            headers=(*contacts, ("Expires", str(granted))),
            to_tag=self._tag(),
        )

    # --- trunks ------------------------------------------------------------------------------

    def _trunk(
        self, request: SipRequest, trunk: SipTrunk, source: Source, now: datetime
    ) -> SipResponse:
        stamp = unix_time(now)
        profile = trunk.profile
        kind = request_type(request)
        # Item 44: the trunk ACL first.
        if kind is not None and kind not in profile.allowed:
            return self._refuse(
                request,
                403,
                "Forbidden",
                f"trunk {trunk.name} (profile {profile.name}) does not accept {kind.value}",
            )
        if profile.digest:
            # Item 43: challenge realm = the Cluster ID enterprise parameter.
            realm = self.cluster.parameters.cluster_id
            header = "Authorization" if profile.challenge == 401 else "Proxy-Authorization"
            value = request.get(header)
            if value is None:
                return self._challenge(request, realm, stamp, code=profile.challenge)
            username = parse_credentials(value).username
            user = self.application_users.get(username)
            if user is None or user.realm != realm:
                # Answered as a wrong password (module docstring, "Guessing").
                why = f"no application user with digest credentials for realm {realm!r}"
                self._verify(
                    request,
                    realm=realm,
                    user=username,
                    ha1=self._decoy_ha1(username, realm),
                    now=stamp,
                    source=source,
                    code=profile.challenge,
                    unknown=why,
                )
                raise self._failed(request, source, username, why, stamp)
            self._verify(
                request,
                realm=realm,
                user=user.name,
                ha1=user.ha1,
                now=stamp,
                source=source,
                code=profile.challenge,
            )
            # Item 44: application-level authorization runs after trunk-level and needs digest.
            if profile.application_authorization and kind is not None and kind not in user.allowed:
                return self._refuse(
                    request,
                    403,
                    "Forbidden",
                    f"application user {user.name} is not authorized for {kind.value}",
                )
        if request.method == "OPTIONS":
            return make_response(request, 200, "OK", to_tag=self._tag())
        if request.method == "REFER":
            return make_response(request, 202, "Accepted", to_tag=self._tag())
        if request.method in ("NOTIFY", "SUBSCRIBE"):
            return make_response(request, 200, "OK", to_tag=self._tag())
        return self._refuse(
            request, 501, "Not Implemented", "the emulated cluster does not route calls"
        )


def _good_response(credentials: Credentials, ha1: str, method: str) -> bool:
    expected = digest_response(
        ha1,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        nc=credentials.nc,
        cnonce=credentials.cnonce,
        qop=credentials.qop,
    )
    return hmac.compare_digest(expected.encode(), credentials.response.encode())


def _requested_expires(request: SipRequest) -> int:
    """The Contact's ``expires`` parameter, else the Expires header, else 3600 (RFC 3261 10.2).

    Raises:
        ProtocolError: a ``Contact: *`` with another Contact or without ``Expires: 0`` (RFC 3261
            10.3 step 6: such a request is invalid, 400).
    """
    contacts = request.get_all("Contact")
    for contact in contacts:
        if contact.strip() == "*":
            if len(contacts) != 1 or request.get("Expires") != "0":
                raise ProtocolError(
                    "Contact * is only valid alone and with Expires: 0 (RFC 3261 10.3)"
                )
            return 0
        value = parse_name_addr(contact).param("expires")
        if value is not None:
            # RFC 3261 25.1: delta-seconds is 1*DIGIT, ASCII digits only (str.isdigit also
            # takes "²", which int() then refuses with a ValueError on a peer's bytes).
            if not (value.isascii() and value.isdigit()):
                raise ProtocolError(f"bad Contact expires {value!r}")
            return int(value)
    header = request.get("Expires")
    return int(header) if header is not None else 3600


def _model(request: SipRequest) -> str | None:
    """The phone model from ``User-Agent: Cisco-CP8841/...``, for auto-registration."""
    agent = request.get("User-Agent") or ""
    if agent.startswith("Cisco-CP"):
        return agent[len("Cisco-CP") :].split("/", 1)[0] or None
    return None
