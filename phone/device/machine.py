"""The phone's state machine: every state and transition, as data, in this one file.

Rule 1 (after h11's ``_state.py``): everything that decides *which state follows which* lives
here. The phone (``phone.device.phone``) does the work of each state and reports the outcome
as a trigger; this table alone says where that outcome leads. A trigger that the table does not
allow in the current state is a bug in the caller and raises :class:`MachineMisuse`.

One ``transitions.Machine`` is shared by every phone (python-libraries.md 1.5: a machine per
phone costs about 4x the time and memory). It holds no reference to phones ("stateless"
pattern): a phone only carries its ``state`` attribute, and :func:`fire` moves it. The table
has no conditions and no callbacks, so the machine's answer to a (state, trigger) pair never
changes: :func:`fire` asks the machine once per pair and replays its answer afterwards.

Boot order follows item 1: power on, image check, CTL then ITL (item 2, re-fetched on every
reset, item 3), config (items 5, 6, 14), firmware only if the load differs (item 36), then
registration (item 7 for secure modes). A certificate operation pending at CAPF runs between
the config and what follows it (docs/capf.md).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Final, Protocol

from transitions import Machine, MachineError

from phone.errors import VphoneError

if TYPE_CHECKING:
    from transitions.core import TransitionConfigDict


class State(Enum):
    """The phone's states. Terminal states end a boot; the phone waits there for a trigger."""

    OFF = "off"
    BOOTING = "booting"  # loading and checking the resident image
    TRUST_LISTS = "trust-lists"  # fetching the CTL, then the ITL
    CONFIGURING = "configuring"  # fetching and verifying the config
    UPGRADING = "upgrading"  # fetching and verifying a new load
    CAPF = "capf"  # a certificate operation the config announced (LSC install, delete ...)
    REGISTERING = "registering"
    REGISTERED = "registered"
    # Failure states a real phone shows:
    NO_CONFIG = "no-config"  # no config it accepts and none kept from before ("Configuring IP")
    REGISTRATION_FAILED = "registration-failed"  # registrar refused, or item 7 / item 18


TERMINAL: Final = frozenset(
    {State.OFF, State.REGISTERED, State.NO_CONFIG, State.REGISTRATION_FAILED}
)
_RUNNING = [s for s in State if s is not State.OFF]

TRANSITIONS: Final[list[TransitionConfigDict]] = [
    {"trigger": "power_on", "source": State.OFF, "dest": State.BOOTING},
    {"trigger": "image_ok", "source": State.BOOTING, "dest": State.TRUST_LISTS},
    # Issue 13: a step that breaks (a bug, never a file: files are refused by rules) ends the
    # boot as a failure with its reason; from BOOTING that is the only way out but image_ok.
    {"trigger": "boot_failed", "source": State.BOOTING, "dest": State.REGISTRATION_FAILED},
    {"trigger": "trust_done", "source": State.TRUST_LISTS, "dest": State.CONFIGURING},
    # Item 18: an ITL the phone cannot load makes registration fail.
    {"trigger": "trust_fatal", "source": State.TRUST_LISTS, "dest": State.REGISTRATION_FAILED},
    {"trigger": "config_ok", "source": State.CONFIGURING, "dest": State.REGISTERING},
    {"trigger": "load_differs", "source": State.CONFIGURING, "dest": State.UPGRADING},
    {"trigger": "config_failed", "source": State.CONFIGURING, "dest": State.NO_CONFIG},
    # CAPF (trust-file-formats.md 9b): a config (or the stub of an encrypted one) announcing a
    # certificate operation sends the phone to CAPF first; afterwards, success or not, it reads
    # its config again, since a new or deleted LSC changes which config it can decrypt.
    {"trigger": "capf_pending", "source": State.CONFIGURING, "dest": State.CAPF},
    {"trigger": "capf_done", "source": State.CAPF, "dest": State.CONFIGURING},
    {"trigger": "capf_failed", "source": State.CAPF, "dest": State.CONFIGURING},
    # Item 36: a new load is installed and booted; item 37: a refused one leaves the resident
    # image running and the phone goes on to register with it.
    {"trigger": "upgraded", "source": State.UPGRADING, "dest": State.BOOTING},
    {"trigger": "upgrade_failed", "source": State.UPGRADING, "dest": State.REGISTERING},
    {"trigger": "registered", "source": State.REGISTERING, "dest": State.REGISTERED},
    {"trigger": "register_failed", "source": State.REGISTERING, "dest": State.REGISTRATION_FAILED},
    # Item 7: a secure-mode config without a CTL sends the phone back for the CTL.
    {"trigger": "need_ctl", "source": State.REGISTERING, "dest": State.TRUST_LISTS},
    # Item 3: a reset or restart re-runs the whole boot, trust lists included.
    {"trigger": "reset", "source": _RUNNING, "dest": State.BOOTING},
    {"trigger": "power_off", "source": _RUNNING, "dest": State.OFF},
]


class MachineMisuse(VphoneError):
    """A trigger fired in a state whose table row does not allow it (a bug in the caller)."""


_MACHINE: Final = Machine(
    model=None,
    states=list(State),
    transitions=TRANSITIONS,
    initial=State.OFF,
    auto_transitions=False,  # to_<state>() would bypass the table (python-libraries.md 1.3)
    send_event=True,
)


class HasState(Protocol):
    """What the machine needs of a phone: a ``state`` attribute."""

    state: State


def _answers_are_pure(machine: Machine) -> bool:
    """Whether the machine's answer to (state, trigger) depends on nothing else.

    True when no transition has conditions or callbacks, no state has enter or exit callbacks,
    the machine has no machine-wide callbacks and does not queue: then a trigger that the
    machine once moved from state S to state D moves every model from S to D, and does
    nothing else on the way.
    """
    hooks = (
        machine.prepare_event,
        machine.before_state_change,
        machine.after_state_change,
        machine.finalize_event,
        machine.on_exception,
        machine.on_final,
    )
    if machine.has_queue or any(hooks):
        return False
    for state in machine.states.values():
        if state.on_enter or state.on_exit:
            return False
    for event in machine.events.values():
        for rows in event.transitions.values():
            for row in rows:
                if row.conditions or row.prepare or row.before or row.after:
                    return False
    return True


# (state, trigger) -> the state the machine moved a model to, remembered after the machine
# answered it once. Only when _answers_are_pure(): then replaying an answer is exactly what
# the machine would do again, minus its per-trigger bookkeeping (about 10 us a trigger, five
# triggers a boot). A trigger the table refuses is never remembered: it always reaches the
# machine, which raises.
_ANSWERS: Final[dict[tuple[State, str], State]] = {}
_MEMO: Final = _answers_are_pure(_MACHINE)


def fire(model: HasState, trigger: str) -> State:
    """Move ``model`` along ``trigger``; return the new state.

    Raises:
        MachineMisuse: the table has no such transition from the model's current state.
    """
    source = model.state
    known = _ANSWERS.get((source, trigger))
    if known is not None:
        model.state = known
        return known
    event = _MACHINE.events.get(trigger)
    if event is None:
        raise MachineMisuse(f"no trigger named {trigger!r}")
    try:
        moved = event.trigger(model)
    except MachineError as exc:
        raise MachineMisuse(f"can't {trigger} in state {model.state.value}: {exc.value}") from None
    if _MEMO and moved is True and isinstance(source, State):
        _ANSWERS[(source, trigger)] = model.state
    return model.state


def triggers(state: State) -> list[str]:
    """The triggers the table allows in ``state``."""
    return sorted(_MACHINE.get_triggers(state))


def mermaid() -> str:
    """The table as a mermaid ``stateDiagram-v2`` (docs/state-machine.md is generated from it)."""
    lines = ["stateDiagram-v2", f"    [*] --> {State.OFF.name}"]
    for row in TRANSITIONS:
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        dest = row["dest"]
        for source in sources:
            assert isinstance(source, State) and isinstance(dest, State)
            lines.append(f"    {source.name} --> {dest.name}: {row['trigger']}")
    for state in sorted(TERMINAL, key=lambda s: s.name):
        if state is not State.OFF:
            lines.append(f"    {state.name} --> [*]")
    return "\n".join(lines) + "\n"
