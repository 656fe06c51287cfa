"""The machine table (phone/device/machine.py): complete, consistent, and documented."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from phone.device.machine import TERMINAL, TRANSITIONS, MachineMisuse, State, fire, triggers

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import gen_state_diagram


class Model:
    def __init__(self, state: State) -> None:
        self.state = state


@pytest.mark.parametrize("row", TRANSITIONS, ids=lambda r: str(r["trigger"]))
def test_every_transition_fires(row: dict[str, object]) -> None:
    sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
    for source in sources:
        assert isinstance(source, State)
        model = Model(source)
        assert fire(model, str(row["trigger"])) is row["dest"]


def test_trigger_not_in_table_raises_typed_error() -> None:
    with pytest.raises(MachineMisuse, match="can't registered in state off"):
        fire(Model(State.OFF), "registered")
    with pytest.raises(MachineMisuse, match="no trigger named"):
        fire(Model(State.OFF), "to_REGISTERED")  # auto transitions are off


def test_every_state_is_reachable_and_every_running_state_can_power_off() -> None:
    reached = {State.OFF}
    for row in TRANSITIONS:
        dest = row["dest"]
        assert isinstance(dest, State)
        reached.add(dest)
    assert reached == set(State)
    for state in State:
        if state is not State.OFF:
            assert "power_off" in triggers(state)


def test_non_terminal_states_have_a_way_forward() -> None:
    for state in State:
        if state not in TERMINAL:
            assert set(triggers(state)) - {"power_off", "reset"}


def test_docs_diagram_is_generated_from_the_table() -> None:
    assert gen_state_diagram.main(["--check"]) == 0
