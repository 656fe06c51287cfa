"""The socket backend: a phone talking to real servers (a lab served by ``vphone lab serve``,
or a real Unified CM).

:class:`SocketBackend` implements :class:`phone.device.port.Backend`:

* ``fetch`` over the transport the phone asks for: :attr:`Transport.HTTP` is HTTP on the TFTP
  server's port 6970, :attr:`Transport.TFTP` is TFTP on port 69 (item 4). The phone loops over
  its model's transports, so a model that tries HTTP first falls back to TFTP whenever the HTTP
  attempt raises (refused, timed out, a 5xx, a truncated body: all ``NetworkError``) and only
  a 404 counts as "not found" for that transport;
* ``tvs_query`` over TLS (:func:`phone.net.tvs_tls.tvs_query_tls`, items 21-22);
* ``capf_exchange`` over TLS (:func:`phone.net.capf_tls.capf_exchange_tls`, section 9b);
* ``register`` with SIP (:func:`phone.net.sip.sip_register`).

Host names from the phone's option 150 and its config resolve through a
:class:`phone.net.hostmap.HostMap`; names the map does not know go to the system resolver with
the ports the phone would use. TFTP attempts per file come from the model table
(``Model.tftp_retries``), as a phone's retry budget does.

The backend is safe to share between threads (the benchmark boots 50 phones at once through
one): the HTTP client is thread-safe and every TFTP transfer has its own socket.
"""

from __future__ import annotations

from phone.catalog.models import Transport, get_model
from phone.device.port import (
    CapfConversation,
    RegisterRequest,
    RegisterResult,
    Requester,
    SccpConversation,
)
from phone.errors import NetworkError, UsageError
from phone.net.capf_tls import capf_exchange_tls
from phone.net.hostmap import HostMap
from phone.net.http import DEFAULT_HTTP_PORT, HttpFetcher
from phone.net.sccp import sccp_exchange_socket
from phone.net.sip import sip_register
from phone.net.tftp import DEFAULT_BLKSIZE, DEFAULT_TFTP_PORT, fetch_tftp
from phone.net.tvs_tls import tvs_query_tls
from phone.pki import Identity
from phone.trust.tvs import ServerCheck, TvsAnswer, TvsServer
from phone.wire.tvs import tvs_device_name

__all__ = ["SocketBackend"]


class SocketBackend:
    """A :class:`phone.device.port.Backend` over real sockets (module docstring).

    Args:
        hosts: where lab host names are reached (default: the system resolver).
        timeout: seconds per TFTP packet and per HTTP connect/read.
        retries: TFTP timeouts before a file fails; default the model's ``tftp_retries``.
        blksize: the TFTP ``blksize`` option.
        tvs_timeout: seconds for a TVS exchange (default ``timeout``).
        sip_timeout: seconds for a SIP transaction (default ``timeout``).
        http: an :class:`HttpFetcher` to use (default: one of its own, closed by :meth:`close`).
    """

    def __init__(
        self,
        hosts: HostMap | None = None,
        *,
        timeout: float = 2.0,
        retries: int | None = None,
        blksize: int = DEFAULT_BLKSIZE,
        tvs_timeout: float | None = None,
        sip_timeout: float | None = None,
        http: HttpFetcher | None = None,
    ) -> None:
        if timeout <= 0:
            raise UsageError(f"the network timeout must be positive, not {timeout}")
        self.hosts = hosts if hosts is not None else HostMap()
        self.timeout = timeout
        self.retries = retries
        self.blksize = blksize
        self.tvs_timeout = tvs_timeout if tvs_timeout is not None else timeout
        self.sip_timeout = sip_timeout if sip_timeout is not None else timeout
        self._own_http = http is None
        self.http = http if http is not None else HttpFetcher(timeout=timeout)

    def close(self) -> None:
        """Release the HTTP connection pool (when this backend created it)."""
        if self._own_http:
            self.http.close()

    def __enter__(self) -> SocketBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, server: str, name: str, *, transport: Transport, requester: Requester) -> bytes:
        """Fetch ``name`` from TFTP server ``server`` over ``transport`` (module docstring)."""
        if transport is Transport.HTTP:
            host, port = self.hosts.resolve(server, "http", DEFAULT_HTTP_PORT)
            agent = f"vphone CP-{requester.model} {requester.device_name}"
            return self.http.fetch(host, port, name, user_agent=agent)
        host, port = self.hosts.resolve(server, "tftp", DEFAULT_TFTP_PORT)
        retries = self.retries
        if retries is None:
            retries = get_model(requester.model).tftp_retries
        return fetch_tftp(
            host, port, name, blksize=self.blksize, timeout=self.timeout, retries=retries
        )

    def tvs_query(
        self,
        server: TvsServer,
        issuer: str,
        serial: bytes,
        check_server: ServerCheck,
        *,
        client: Identity,
        requester: Requester,
        certificate: bytes | None = None,
    ) -> TvsAnswer:
        """Ask TVS ``server`` over TLS, presenting ``client`` (items 21, 22)."""
        address = self.hosts.resolve(server.host, "tvs", server.port)
        try:
            return tvs_query_tls(
                address,
                issuer=issuer,
                serial=serial,
                check_server=check_server,
                client=client,
                certificate=certificate,
                device_name=tvs_device_name(requester.model, requester.device_name),
                timeout=self.tvs_timeout,
            )
        except OSError as exc:  # defensive: every network failure is a NetworkError
            raise NetworkError(f"TVS {server} ({address[0]}:{address[1]}): {exc}") from None

    def capf_exchange(
        self,
        host: str,
        port: int,
        conversation: CapfConversation,
        check_server: ServerCheck,
        *,
        requester: Requester,
    ) -> None:
        """Run a CAPF session over TLS with ``host`` (:mod:`phone.net.capf_tls`, section 9b)."""
        del requester  # CAPF learns the device name inside the protocol
        address = self.hosts.resolve(host, "capf", port)
        try:
            capf_exchange_tls(address, conversation, check_server, timeout=self.tvs_timeout)
        except OSError as exc:  # defensive: every network failure is a NetworkError
            raise NetworkError(f"CAPF {host} ({address[0]}:{address[1]}): {exc}") from None

    def register(self, request: RegisterRequest) -> RegisterResult:
        """REGISTER with the CallManager named in the config, over ``request.transport``."""
        # The config names one port per transport (5060, and 5061 for TLS): map each alike.
        service = "sips" if request.transport == "tls" else "sip"
        address = self.hosts.resolve(request.callmanager, service, request.port)
        try:
            return sip_register(address, request, timeout=self.sip_timeout)
        except OSError as exc:
            raise NetworkError(
                f"SIP {request.callmanager} ({address[0]}:{address[1]}): {exc}"
            ) from None

    def sccp_exchange(self, request: RegisterRequest, conversation: SccpConversation) -> None:
        """Register over SCCP (TCP 2000, TLS 2443; host-map keys ``sccp`` and ``sccps``)."""
        service = "sccps" if request.transport == "tls" else "sccp"
        address = self.hosts.resolve(request.callmanager, service, request.port)
        try:
            sccp_exchange_socket(address, request, conversation, timeout=self.sip_timeout)
        except OSError as exc:  # defensive: every network failure is a NetworkError
            raise NetworkError(
                f"SCCP {request.callmanager} ({address[0]}:{address[1]}): {exc}"
            ) from None
