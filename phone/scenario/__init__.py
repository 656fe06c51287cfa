"""Scenarios: rehearse a procedure on a fleet of virtual phones before the maintenance window.

A scenario (a TOML file, ``docs/scenarios.md``) names clusters, groups of phones, ordered steps
(reset, move, regenerate a certificate, ...) and expectations ("all phones of group desk end
registered with the new cluster"). Running it answers: which phones end up stuck, and why.

::

    from phone.scenario import load_scenario, run_scenario

    report = run_scenario(load_scenario("migration-rollback"))   # a library scenario
    print(report.ok, report.summary)

Modules: :mod:`~phone.scenario.model` (the data), :mod:`~phone.scenario.parse` (TOML to
data, errors with line and key), :mod:`~phone.scenario.runner` (the steps over an in-memory
lab, one shard of the fleet), :mod:`~phone.scenario.report` (merging and the text, JSON and
JUnit outputs), :mod:`~phone.scenario.fleet` (worker processes), :mod:`~phone.scenario.library`
(the scenario library and file loading).
"""

from __future__ import annotations

from phone.scenario.fleet import run_scenario
from phone.scenario.library import library_names, library_scenarios, library_text, load_scenario
from phone.scenario.model import Scenario, ScenarioError
from phone.scenario.parse import parse_scenario
from phone.scenario.report import Report, junit_xml, render_text
from phone.scenario.runner import ScenarioRunner

__all__ = [
    "Report",
    "Scenario",
    "ScenarioError",
    "ScenarioRunner",
    "junit_xml",
    "library_names",
    "library_scenarios",
    "library_text",
    "load_scenario",
    "parse_scenario",
    "render_text",
    "run_scenario",
]
