"""Issue 18 friction 3: failure summaries that do not mislead.

* a phone's summary state says which cluster it is registered with ("registered with old" is
  not a migrated phone);
* a stuck phone's cause is one line of at most 160 characters, the cause first, each DN once;
  the whole reason stays in ``-v`` and in the JSON;
* ``itl_mismatches`` on a cluster no phone reported its ITL to fails, and says why, instead
  of passing on zero reports.
"""

from __future__ import annotations

import json
import textwrap

from keypool import pooled_keys

from phone.scenario import parse_scenario, run_scenario
from phone.scenario.report import Report, cause, render_text

MIGRATION = """\
[scenario]
name = "t"
title = "moved without preparation"

[[cluster]]
name = "old"
release = "14.x"

[[cluster]]
name = "new"
release = "14.x"

[[group]]
name = "desk"
count = 2
cluster = "old"

[[group]]
name = "stay"
count = 1
cluster = "old"

[[step]]
do = "move"
groups = ["desk"]
cluster = "new"

[[step]]
do = "reset"
"""

DN = "CN=ITLRECOVERY_cucm1.new.lab;OU=VTG;O=vphone lab;L=SJ;ST=CA;C=US"
LONG = (
    f"itl rejected by item 24: ITLSEP<MAC>.tlv: signer '{DN}' (serial <hex>, issuer '{DN}') is "
    "not a SAST record of the installed ITL; TVS cucm1.old.lab:2445 answered invalid: "
    "certificate not found in the TVS certificate store; kept the old ITL"
)


def _run(extra: str = "") -> Report:
    scenario = parse_scenario(MIGRATION + textwrap.dedent(extra), path="t.toml")
    return run_scenario(scenario, keys=pooled_keys())


def test_cause_keeps_the_cn_once_and_fits_160_columns() -> None:
    assert len(LONG) == 358 and LONG.count("ITLRECOVERY_cucm1.new.lab") == 2
    short = cause(LONG)
    assert short == (
        "itl rejected by item 24: signer CN=ITLRECOVERY_cucm1.new.lab not in the ITL; TVS "
        "cucm1.old.lab:2445 answered invalid: certificate not found in the TVS..."
    )
    assert len(short) <= 160
    # The comma form of a DN (CUCM's) shortens the same way; a short reason is left alone.
    comma = "config rejected by item 14: signer CN=cucm1.a.lab,OU=VTG,O=vphone lab,C=US unknown"
    assert cause(comma) == "config rejected by item 14: signer CN=cucm1.a.lab unknown"
    assert cause("no problem in the latest boot") == "no problem in the latest boot"
    assert cause(LONG, 40) == "itl rejected by item 24: signer..."
    tls = (
        "itl rejected by item 24: ITLSEP<MAC>.tlv: signer 'CN=x.lab;OU=VTG;C=US' (serial <hex>, "
        "issuer 'CN=x.lab;OU=VTG;C=US') is not a SAST record of the installed ITL; TVS t:2445: "
        "TLS to t:2445 refused: server certificate CN=t;OU=VTG;O=vphone lab;C=US (serial <hex>) "
        "is not a TVS record of the installed ITL (fail closed); kept the old ITL"
    )
    # Within the width only the DNs, serials and the TVS named twice go.
    assert cause(tls, 250) == (
        "itl rejected by item 24: ITLSEP<MAC>.tlv: signer CN=x.lab is not a SAST record of the "
        "installed ITL; TLS to TVS t:2445 refused: server certificate CN=t is not a TVS record of "
        "the installed ITL (fail closed); kept the old ITL"
    )
    assert cause(tls, 100) == (
        "itl rejected by item 24: signer CN=x.lab not in the ITL; TLS to TVS t:2445 refused: CN=t "
        "not a..."
    )


def test_summary_names_the_cluster_a_phone_is_registered_with() -> None:
    report = _run()
    rows = {(r.group, r.label): r.phones for r in report.summary}
    assert rows == {("desk", "registered with new"): 2, ("stay", "registered with old"): 1}
    text = render_text(report)
    assert "  desk  registered with new        2  itl rejected by item 24: " in text
    assert "  stay  registered with old        1  no problem in the latest boot" in text
    document = json.loads(report.to_json())
    assert [(r["group"], r["state"], r["cluster"]) for r in document["summary"]] == [
        ("desk", "registered", "new"),
        ("stay", "registered", "old"),
    ]


def test_stuck_phones_cause_is_one_short_line_and_the_reason_stays_in_v_and_json() -> None:
    report = _run('\n[[expect]]\ngroups = ["desk"]\nlast_itl = "accepted"\n')
    text = render_text(report)
    assert "FAIL" in text
    summary = text[text.index("final states by cause (-v: whole reasons):") :].splitlines()
    example = [line for line in text.splitlines() if line.startswith("             SEP")]
    for line in summary[1:-1] + example:
        assert len(line) <= 160, line
        assert "OU=VTG" not in line and "serial <hex>" not in line
    desk = next(line for line in summary if line.startswith("  desk"))
    assert desk == (
        "  desk  registered with new        2  itl rejected by item 24: signer "
        "CN=ITLRECOVERY_cucm1.new.lab not in the ITL; TVS cucm1.old.lab:2445 answered invalid..."
    )
    verbose = render_text(report, verbose=True)
    assert "final states by reason:" in verbose
    assert f"(serial <hex>, issuer '{DN}') is not a SAST record" in verbose
    document = json.loads(report.to_json())
    row = document["summary"][0]
    assert row["reason"].startswith(f"itl rejected by item 24: ITLSEP<MAC>.tlv: signer '{DN}'")
    assert row["reason"].endswith("kept the old ITL")
    assert len(row["cause"]) <= 160 and row["cause"].startswith("itl rejected by item 24: ")
    assert DN in document["steps"][-1]["expectations"][0]["examples"][0]["detail"]


STAYED = """\
[scenario]
name = "t"
title = "every phone still on a"

[[cluster]]
name = "a"
release = "14.x"

[[cluster]]
name = "b"
release = "14.x"

[[group]]
name = "desk"
count = 3
cluster = "a"

[[expect]]
cluster = "a"
itl_mismatches = 0

[[expect]]
cluster = "b"
itl_mismatches = 0
"""


def test_itl_mismatches_on_a_cluster_nobody_reported_to_fails_and_says_so() -> None:
    report = run_scenario(parse_scenario(STAYED, path="t.toml"), keys=pooled_keys())
    on_a, on_b = report.expectations
    assert on_a.ok and on_a.values == {"itl_mismatches": 0, "itl_reports": 3}
    # Before: "cluster b: itl_mismatches exactly 0" passed with no phone reporting to b.
    assert not on_b.ok
    assert on_b.outcome == "itl_mismatches=0, itl_reports=0"
    text = render_text(report)
    assert (
        "      FAIL line 22   cluster b: itl_mismatches exactly 0 -> itl_mismatches=0, "
        "itl_reports=0\n             no phone reported its ITL to cluster b: its ITL File Status "
        "is empty, so a mismatch count says nothing\n"
    ) in text
    assert text.endswith("FAIL: 1 of 2 expectations hold, 1 failed\n")
