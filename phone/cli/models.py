"""``vphone model list|show``: the model table, with the source and [G] marks of every row.

The table is data (:mod:`phone.catalog.table`); this group only prints it. ``--json`` prints
the same rows as data (``Model.view``), with the sources expanded to their full citations.
"""

from __future__ import annotations

import argparse
import json
from typing import TypeAlias

from phone.catalog.models import MODELS, Model, get_model
from phone.catalog.table import SOURCES

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _view(model: Model) -> dict[str, object]:
    view = model.view()
    cited = sorted({part for _, text in model.sources for part in _ids(text)})
    view["citations"] = {cid: SOURCES[cid] for cid in cited}
    return view


def _ids(text: str) -> list[str]:
    # Citations are written "C4, C5 (...)" or "item 46, S13": pick the source ids out.
    words = text.replace(",", " ").replace("(", " ").replace(")", " ").replace(":", " ").split()
    return [w for w in words if w in SOURCES]


def _flag(model: Model, field: str, text: str) -> str:
    return f"{text} [G]" if field in model.guesses else text


def _list(args: argparse.Namespace) -> int:
    rows = sorted(MODELS.values(), key=lambda m: m.name)
    if args.json:
        print(json.dumps([_view(m) for m in rows], indent=2))
        return 0
    print(f"{'model':<7} {'family':<20} {'SBD':<5} {'CTL':<5} {'format':<10} {'default load'}")
    for m in rows:
        sbd = _flag(m, "security_by_default", "yes" if m.security_by_default else "no")
        ctl = _flag(m, "ctl", "yes" if m.ctl else "no")
        print(
            f"{m.name:<7} {m.family:<20} {sbd:<5} {ctl:<5} {m.image_format.value:<10} "
            f"{m.default_load}"
        )
    print(f"{len(rows)} models; [G] marks a guess (docs/models.md)")
    return 0


def _show(args: argparse.Namespace) -> int:
    model = get_model(args.model)
    view = _view(model)
    if args.json:
        print(json.dumps(view, indent=2))
        return 0
    sources = dict(model.sources)
    for key, value in view.items():
        if key in ("sources", "guesses", "citations"):
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        if isinstance(value, dict):
            text = "; ".join(f"{k}: {v}" for k, v in value.items())
        mark = " [G]" if key in model.guesses else ""
        cite = f"  ({sources[key]})" if key in sources else ""
        print(f"{key:<20} {text}{mark}{cite}")
    print("sources:")
    for cid, citation in dict(view["citations"]).items():  # type: ignore[call-overload]
        print(f"  {cid}: {citation}")
    return 0


def register(sub: Sub) -> None:
    """Add the ``model`` command group."""
    group = sub.add_parser(
        "model",
        help="the phone model table: families, loads, sources and guesses (docs/models.md)",
        description="Print the model table vphone boots from; every field names its source, "
        "and [G] marks a guess.",
    )
    commands = group.add_subparsers(dest="model_command", metavar="COMMAND")
    commands.required = True
    listing = commands.add_parser("list", help="every model, one line each")
    listing.add_argument("--json", action="store_true", help="every row as JSON")
    listing.set_defaults(handler=_list)
    show = commands.add_parser("show", help="one model's row, field by field")
    show.add_argument("model", help='a model number, e.g. "8841" or "CP-7925G"')
    show.add_argument("--json", action="store_true", help="the row as JSON")
    show.set_defaults(handler=_show)
