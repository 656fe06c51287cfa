"""The ``vphone`` command line.

One module per command group (files, lab, phone, boot, ...), each exposing ``register(sub)``
that adds its sub-commands; this module only dispatches and turns errors into one line and an
exit code (0 success, 1 a check failed or input was bad, 2 usage). No traceback reaches a user.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from phone.errors import VphoneError

Handler = Callable[[argparse.Namespace], int]


def _groups() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    # Imported here so that `vphone --help` stays fast and a broken group names itself.
    from phone.cli import device, files, lab, models, scenario  # noqa: PLC0415

    return [device.register, files.register, lab.register, models.register, scenario.register]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every command group registered."""
    parser = argparse.ArgumentParser(
        prog="vphone",
        description="Emulated Cisco IP-phone trust engine: see every trust decision and why.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in _groups():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except VphoneError as exc:
        print(f"vphone: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("vphone: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
