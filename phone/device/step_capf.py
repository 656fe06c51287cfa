"""The CAPF step: run the certificate operation the config announced (docs/capf.md).

The CAPF protocol itself (the client, how the phone trusts the CAPF server) is in
``phone.device.capf``; this step opens one session per boot cycle through the backend and
records how it ended. The LSC it installs or deletes is written by ``PhoneCore._store_lsc``.
"""

from __future__ import annotations

from phone.device.capf import CapfClient, CapfServerTrust, ec_keys_allowed, pending_auth
from phone.device.core import PhoneCore
from phone.errors import NetworkError
from phone.trust.decision import Verdict
from phone.trust.tvs import TlsRefused
from phone.wire.capf import AuthType


class CapfStep(PhoneCore):
    """The phone's CAPF state (a part of ``VirtualPhone``)."""

    def _step_capf(self) -> str:
        self._cycle.capf_attempted = True
        # Whatever happens, the config is read again from its stub: CAPF changed capfAuthMode
        # and, after an install or delete, the certificate the config is encrypted to.
        self._volatile.wants_encrypted = False
        announced = self._capf_announced
        auth = pending_auth(announced)
        assert announced is not None and announced.capf_host is not None and auth is not None
        where = f"{announced.capf_host}:{announced.capf_port}"
        if auth is AuthType.PASSWORD and not self.capf_string:
            self._record(
                "capf",
                Verdict.FAILED,
                "seed",
                f"CAPF {where} has an operation that needs the authentication string, and none "
                "was entered on the phone",
                server=announced.capf_host,
            )
            return "capf_failed"
        trust = CapfServerTrust(self.ctl, self.itl, self._ask_tvs)
        client = CapfClient(
            device_name=f"SEP{self.mac}",
            auth=auth,
            mic=self.mic(),
            lsc=self.lsc(),
            keys=self.keys,
            trust=trust,
            store=self._store_lsc,
            delete=self._delete_lsc,
            now=self.clock(),
            secret=self.capf_string,
            ec_allowed=ec_keys_allowed(self.itl),
        )
        try:
            self.backend.capf_exchange(
                announced.capf_host,
                announced.capf_port,
                client,
                trust,
                requester=self.requester,
            )
        except TlsRefused as exc:
            self._record("capf", Verdict.REJECTED, "item 20", str(exc), server=announced.capf_host)
            return "capf_failed"
        except NetworkError as exc:  # ProtocolError included: the connection was dropped
            self._record(
                "capf", Verdict.FAILED, "seed", f"CAPF {where}: {exc}", server=announced.capf_host
            )
            return "capf_failed"
        self._record("capf", Verdict.ACCEPTED, "item 20", trust.how, server=announced.capf_host)
        outcome = client.outcome
        assert outcome is not None  # capf_exchange returns only once the session ended
        did = "; ".join(outcome.actions) or "nothing"
        if outcome.no_action:
            self._record(
                "capf",
                Verdict.SKIPPED,
                "seed",
                f"CAPF {where}: {outcome.reason}",
                server=announced.capf_host,
            )
            return "capf_done"
        self._record(
            "capf",
            Verdict.ACCEPTED if outcome.ok else Verdict.REJECTED,
            "seed",
            f"CAPF {where} {'completed' if outcome.ok else 'failed'}: {outcome.reason} "
            f"(the phone {did})",
            server=announced.capf_host,
        )
        return "capf_done" if outcome.ok else "capf_failed"
