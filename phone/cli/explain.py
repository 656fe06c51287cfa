"""``vphone explain item N`` and ``vphone explain items``: what a behaviour item means.

Every decision in a trace or report names its rule ("itl rejected by item 24"); this group
prints the item's entry of the behaviour table (:mod:`phone.catalog.behaviours`, the same data
as docs/behaviours.md): what a real phone does, the sources, where vphone implements and tests
it. Light to import: the table is read only when a handler runs.
"""

from __future__ import annotations

import argparse
import json
from typing import TypeAlias

from phone.errors import UsageError

Sub: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _number(text: str) -> int:
    """``24``, ``item24`` or ``item 24`` -> 24 (reports print "item 24")."""
    digits = text.lower().removeprefix("item").strip()
    if not digits.isdigit():
        raise UsageError(f"{text!r} is not an item number (the items are 1 to 48)")
    return int(digits)


def cmd_item(args: argparse.Namespace) -> int:
    """``explain item N``."""
    from phone.catalog.behaviours import behaviour, behaviours, render_text  # noqa: PLC0415

    number = _number(args.number)
    try:
        item = behaviour(number)
    except KeyError:
        numbers = [b.number for b in behaviours()]
        raise UsageError(
            f"there is no item {number}: the items are {numbers[0]} to {numbers[-1]} "
            "(`vphone explain items` lists them)"
        ) from None
    if args.json:
        print(json.dumps(item.as_dict(), indent=2))
    else:
        print(render_text(item), end="")
    return 0


def cmd_items(args: argparse.Namespace) -> int:
    """``explain items``."""
    from phone.catalog.behaviours import behaviours, sections  # noqa: PLC0415

    rows = behaviours()
    if args.json:
        print(json.dumps([b.as_dict() for b in rows], indent=2))
        return 0
    section = ""
    for item in rows:
        if item.section != section:
            section = item.section
            print(f"{section}. {sections()[section]}")
        mark = "" if item.implemented else "  (not emulated)"
        print(f"  {item.number:>2}  {item.title}{mark}")
    return 0


def register(sub: Sub) -> None:
    """Add the ``explain`` group."""
    text = "explain a behaviour item that traces and reports name (item 24 ...)"
    group = sub.add_parser(
        "explain",
        help=text,
        description="Explain the behaviour items that every decision names: what a real phone "
        "does, the Cisco sources, where vphone implements and tests it (docs/behaviours.md).",
    )
    commands = group.add_subparsers(dest="explain_command", metavar="COMMAND")
    commands.required = True
    item = commands.add_parser(
        "item",
        help="one item: what a real phone does, sources, code and tests",
        description="Print one behaviour item, e.g. `vphone explain item 24`. Exit 2 for an "
        "item that does not exist.",
    )
    item.add_argument("number", metavar="N", help="the item number, as reports print it")
    item.add_argument("--json", action="store_true", help="print the entry as JSON")
    item.set_defaults(handler=cmd_item)
    items = commands.add_parser(
        "items",
        help="list every item with its title",
        description="List the behaviour items by section.",
    )
    items.add_argument("--json", action="store_true", help="print every entry as JSON")
    items.set_defaults(handler=cmd_items)
