"""The package's imports follow the layer order of docs/architecture.md, with no cycle (issue 11).

The order is read from the ```` ```layers ```` block of ``docs/architecture.md``, so the
document and the code cannot drift apart; the checker itself is shown to fail on a synthetic
tree with a back-import, a sideways import, a lazy import cycle and an unplaced package.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from layering import check, read_layers

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def test_phone_follows_the_layer_order_of_the_architecture_doc() -> None:
    layers = read_layers(ARCHITECTURE.read_text())
    problems = check(ROOT / "phone", "phone", layers)
    assert not problems, "\n".join(map(str, problems))


def test_the_doc_names_the_layers_issue_11_asks_for_in_that_order() -> None:
    flat = [prefix for layer in read_layers(ARCHITECTURE.read_text()) for prefix in layer]
    order = [
        "phone.formats",
        "phone.trust",
        "phone.device",
        "phone.cluster",
        "phone.net",
        "phone.scenario",
        "phone.cli",
    ]
    assert [p for p in flat if p in order] == order
    # The catalogue and the codecs sit below the trust rules.
    for low in ("phone.wire", "phone.pki", "phone.catalog"):
        assert flat.index(low) < flat.index("phone.trust")


LAYERS = [["fake.errors"], ["fake.formats", "fake.wire"], ["fake.trust"], ["fake.cli"]]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "fake"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.parent != root and not (path.parent / "__init__.py").exists():
            (path.parent / "__init__.py").write_text("")
        path.write_text(text)
    return root


CLEAN = {
    "errors.py": "",
    "formats/tlv.py": "from fake.errors import *\n",
    "wire/tvs.py": "import fake.errors\n",
    "trust/rules.py": "from fake.formats import tlv\nfrom fake.wire.tvs import x\n",
    "cli/main.py": "from fake.trust.rules import decide\nfrom ..formats import tlv\n",
}


def test_a_clean_synthetic_tree_passes(tmp_path: Path) -> None:
    assert check(_tree(tmp_path, CLEAN), "fake", LAYERS) == []


@pytest.mark.parametrize(
    ("module", "text", "why"),
    [
        # A back-import: the codecs reach up to the CLI.
        ("formats/tlv.py", "from fake.cli.main import run\n", "fake.cli is above fake.formats"),
        # The same, hidden in a function or under TYPE_CHECKING, still counts.
        ("formats/tlv.py", "def f():\n    import fake.trust.rules\n", "is above"),
        (
            "formats/tlv.py",
            "import typing\nif typing.TYPE_CHECKING:\n    from fake.trust import rules\n",
            "is above",
        ),
        # Sideways: two packages of one layer know nothing of each other.
        ("wire/tvs.py", "from fake.formats.tlv import x\n", "fake.formats is beside fake.wire"),
        # A package no layer names must be placed first.
        ("extra.py", "from fake.errors import x\n", "fake.extra is in no layer"),
    ],
)
def test_a_bad_import_fails(tmp_path: Path, module: str, text: str, why: str) -> None:
    problems = check(_tree(tmp_path, {**CLEAN, module: text}), "fake", LAYERS)
    assert problems, "the checker passed a bad import"
    assert any(why in str(p) for p in problems), problems


def test_a_cycle_inside_one_layer_fails(tmp_path: Path) -> None:
    files = {
        **CLEAN,
        "trust/a.py": "from fake.trust.b import x\n",
        "trust/b.py": "def f():\n    from fake.trust import a\n",  # lazy, still a cycle
    }
    problems = check(_tree(tmp_path, files), "fake", LAYERS)
    assert [str(p) for p in problems if "cycle" in str(p)] == [
        "fake.trust.a:0 imports fake.trust.b: cycle fake.trust.a -> fake.trust.b -> fake.trust.a"
    ]
