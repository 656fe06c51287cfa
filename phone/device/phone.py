"""The virtual phone: the state machine of ``machine.py`` driving the pure trust rules.

Each state has one step method. A step does the I/O of its state through the backend and the
flash, asks the pure rules in ``phone.trust`` what to make of the bytes, records the decision
in the trace (and the status log where a real phone shows a message), and returns the trigger
that ``machine.TRANSITIONS`` turns into the next state.

This module holds :class:`VirtualPhone`: what a user does to a phone (power, reset, erase) and
the loop that runs the steps. The steps live one per module, each a part of the phone built on
the shared state and helpers of ``core.py``:

* ``step_trust_lists.py``: TRUST_LISTS, the CTL and the ITL (items 2, 3);
* ``step_config.py``: CONFIGURING, the device config and other signed files (items 5-8, 14);
* ``step_firmware.py``: UPGRADING, a new load (items 36-38);
* ``step_capf.py``: CAPF, a certificate operation the config announced (docs/capf.md);
* ``step_register.py``: REGISTERING (items 1, 7, 30).

What the phone reports (trace entries, state changes) is in ``trace.py``.

Nothing a step downloads reaches the flash before a rule has accepted it (item 13).
"""

from __future__ import annotations

from collections.abc import Callable

from phone.catalog.models import DEFAULT_MODEL
from phone.device import flash as names
from phone.device.core import STATUS_LOG_SIZE, BootCycle, Volatile
from phone.device.flash import Flash
from phone.device.machine import TERMINAL, MachineMisuse, State, fire
from phone.device.port import Backend
from phone.device.step_capf import CapfStep
from phone.device.step_config import ConfigStep
from phone.device.step_firmware import FirmwareStep
from phone.device.step_register import RegisterStep
from phone.device.step_trust_lists import TrustListStep
from phone.device.trace import Clock, EventHook, PhoneEvent, StateChanged, TraceEntry, utc_now
from phone.errors import UsageError
from phone.pki import FreshKeys, KeySource
from phone.trust.decision import Status, Verdict

# The names other modules import from here (they moved to core.py and trace.py).
__all__ = [
    "STATUS_LOG_SIZE",
    "Clock",
    "EventHook",
    "PhoneEvent",
    "StateChanged",
    "TraceEntry",
    "VirtualPhone",
    "utc_now",
]

_FAILED: dict[State, str] = {
    State.BOOTING: "boot_failed",
    State.TRUST_LISTS: "trust_fatal",
    State.CONFIGURING: "config_failed",
    State.UPGRADING: "upgrade_failed",
    State.CAPF: "capf_failed",
    State.REGISTERING: "register_failed",
}
"""The trigger that fails each running state's step (the machine table's failure rows)."""

_MAX_STEPS = 64  # a boot that takes more steps than this is looping: a bug, not a phone


class VirtualPhone(TrustListStep, ConfigStep, FirmwareStep, CapfStep, RegisterStep):
    """An emulated Cisco IP phone.

    Args:
        mac: the phone's MAC address (12 hex digits; separators are removed).
        backend: the network the phone talks to (see :mod:`phone.net`).
        tftp: the TFTP server host the phone's option 150 points to.
        model: a model number from :data:`phone.catalog.models.MODELS`.
        flash: the phone's storage; in memory when omitted.
        clock: returns the current UTC time; tests pass a fixed clock.
        keys: where the phone's RSA keys for CAPF come from (tests pass pooled keys).
        protocol: ``"sip"`` or ``"sccp"`` (issue 15); default the model's
            (:attr:`phone.catalog.rows.Model.default_protocol`: SIP where it runs both).

    ``capf_string`` is the authentication string typed on the phone's keypad for a CAPF
    operation "by authentication string" (docs/capf.md); None when nobody typed one.
    """

    def __init__(
        self,
        *,
        mac: str,
        backend: Backend,
        tftp: str,
        model: str = DEFAULT_MODEL,
        flash: Flash | None = None,
        clock: Clock = utc_now,
        keys: KeySource | None = None,
        protocol: str | None = None,
    ) -> None:
        # FreshKeys is looked up here, in this module, at construction (tests replace it).
        super().__init__(
            mac=mac,
            backend=backend,
            tftp=tftp,
            model=model,
            flash=flash,
            clock=clock,
            keys=keys if keys is not None else FreshKeys(),
            protocol=protocol,
        )

    # --- public API ----------------------------------------------------------------------

    def boot(self) -> State:
        """Power on (or reset a running phone) and run until the boot ends; return the state."""
        if self.state is State.OFF:
            return self.power_on()
        return self.reset()

    def power_on(self) -> State:
        """Power on a phone that is off and run the boot."""
        if self.state is not State.OFF:
            raise UsageError("the phone is already on; use reset()")
        self._cycle = BootCycle()
        self._fire("power_on")
        return self._run()

    def reset(self) -> State:
        """Restart a running phone (item 3: trust lists are fetched again)."""
        if self.state is State.OFF:
            raise UsageError("the phone is off; use power_on()")
        self._cycle = BootCycle()
        self._fire("reset")
        return self._run()

    def power_off(self) -> None:
        """Cut power: volatile memory (the TVS cache, item 23) is lost, flash is kept."""
        if self.state is not State.OFF:
            self._fire("power_off")
        self._volatile = Volatile()

    def erase_trust(self) -> None:
        """Security settings reset: erase the CTL and the ITL (item 46)."""
        self.flash.delete(names.CTL)
        self.flash.delete(names.ITL)
        self.ctl = self.itl = None
        self._settings.pop("itl_applied_at", None)
        self._save_settings()
        self._say(Status.ERASING_TRUST)
        self._record("erase", Verdict.ACCEPTED, "item 46", f"erased via {self.model.erase_path}")

    def factory_reset(self) -> None:
        """Erase everything but the resident image and the MIC (item 46)."""
        keep = {names.IMAGE, names.MIC_CERT, names.MIC_KEY}
        for name in self.flash.names():
            if name not in keep:
                self.flash.delete(name)
        self.ctl = self.itl = None
        self.config = None
        self._settings = self._load_settings()
        self._record("erase", Verdict.ACCEPTED, "item 46", "factory reset")

    # --- the machine ---------------------------------------------------------------------

    def _fire(self, trigger: str) -> None:
        old = self.state
        new = fire(self, trigger)
        if self._hooks:  # the event is made only for someone listening (five a boot)
            self._emit(StateChanged(old, new, trigger))

    def _run(self) -> State:
        steps: dict[State, Callable[[], str]] = {
            State.BOOTING: self._step_boot,
            State.TRUST_LISTS: self._step_trust_lists,
            State.CONFIGURING: self._step_configure,
            State.UPGRADING: self._step_upgrade,
            State.CAPF: self._step_capf,
            State.REGISTERING: self._step_register,
        }
        for _ in range(_MAX_STEPS):
            if self.state in TERMINAL:
                return self.state
            state = self.state
            try:
                trigger = steps[state]()
            except Exception as exc:
                # Untrusted input reaches the rules only as FormatErrors, which they turn into
                # refusals; anything else escaping a step is a bug. A phone never crashes out
                # of its boot for it (issue 13): the step fails, with the error as its reason,
                # and what it was deciding stays uninstalled (a step writes flash last).
                trigger = self._step_crashed(state, exc)
            self._fire(trigger)
        raise MachineMisuse(f"boot did not settle after {_MAX_STEPS} steps (last: {self.state})")

    def _step_crashed(self, state: State, exc: Exception) -> str:
        self._record(
            state.value,
            Verdict.FAILED,
            "item 13",
            f"internal error in the {state.value} step ({type(exc).__name__}: {exc}); the step "
            "failed and nothing it was deciding was installed. This is a vphone bug: please "
            "report it with this trace",
        )
        return _FAILED[state]

    # --- BOOTING (the other states' steps are in step_*.py) ------------------------------

    def _step_boot(self) -> str:
        # A reboot clears volatile memory (item 23); the boot-cycle counters stay.
        self._volatile = Volatile()
        self.registered_with = None
        self.ctl = self._stored_list(names.CTL)
        self.itl = self._stored_list(names.ITL)
        self.config = self._stored_config()
        self._record(
            "boot",
            Verdict.ACCEPTED,
            "item 1",
            f"{self.model.device_prefix} running {self.running_load}; TFTP server {self.tftp}",
        )
        return "image_ok"
