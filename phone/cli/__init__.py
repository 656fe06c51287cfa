"""The ``vphone`` command line.

One module per command group (files, lab, phone, boot, ...), each exposing ``register(sub)``
that adds its sub-commands; this module only dispatches and turns errors into one line and an
exit code (0 success, 1 a check failed or input was bad, 2 usage, 130 interrupted). No
traceback reaches a user.

The CLI starts like a small tool (issue 17 item 4): :data:`GROUPS` names every top-level
command, its group module and its one-line help, so ``vphone --help`` imports no group at all
and ``vphone tlv show`` imports only the ``files`` group (whose handlers import the codecs they
need). A group is imported when its command is the one asked for; the others are listed as
stubs with the same help. ``tests/test_cli_conventions.py`` checks which modules a parse loads.

The conventions every command shares (issue 18 item 2) are added here, after the groups
registered themselves, so a new command gets them without asking: a description (its help
sentence when it has none of its own), ``-q/--quiet`` and ``-v/--verbose``, and the
sub-command's own usage on a usage error (:class:`Parser`).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from phone.errors import VphoneError

Handler = Callable[[argparse.Namespace], int]

GROUPS: dict[str, tuple[str, str]] = {
    # command: (group module, help); a group module may register several commands.
    "boot": ("phone.cli.device", "boot one virtual phone and show every trust decision"),
    "phone": ("phone.cli.device", "a virtual phone's flash: show, erase trust lists"),
    "tlv": ("phone.cli.files", "ITL and CTL trust lists (.tlv)"),
    "sgn": ("phone.cli.files", "signed files (.sgn, .enc.sgn)"),
    "image": ("phone.cli.files", "phone firmware images"),
    "lab": (
        "phone.cli.lab",
        "an emulated Unified CM lab: clusters that build, sign and serve phone files",
    ),
    "model": (
        "phone.cli.models",
        "the phone model table: families, loads, sources and guesses (docs/models.md)",
    ),
    "scenario": (
        "phone.cli.scenario",
        "rehearse a procedure on a fleet of virtual phones (docs/scenarios.md)",
    ),
    "explain": (
        "phone.cli.explain",
        "explain a behaviour item that traces and reports name (docs/behaviours.md)",
    ),
    "completion": ("phone.cli.completion", "print a shell completion script (bash or zsh)"),
}
"""Every top-level command: the module whose ``register(sub)`` adds it, and its help."""

# Exit codes written once: a usage error (argparse's), an interrupted run (128 + SIGINT).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """An argument parser whose sub-commands report their own usage.

    argparse lets a sub-command collect the options it does not know and hands them to the
    top-level parser, which then prints *its* usage ("vphone [-h] COMMAND ..."): useless for
    ``vphone tlv show --jsn``. Here every parser refuses what it does not know itself, so the
    innermost command in use prints its usage and the error.
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Parse, and refuse any argument this parser (or a sub-command of it) does not know."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def error(self, message: str) -> NoReturn:
        """Print this parser's usage and the error; exit 2."""
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _Version(argparse.Action):
    """``--version``: read from the installed distribution only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print vphone's version and exit")

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"vphone {version()}")
        parser.exit()


def version() -> str:
    """The installed version of vphone (``0+unknown`` when run from a bare source tree)."""
    from importlib.metadata import PackageNotFoundError  # noqa: PLC0415 - only for --version
    from importlib.metadata import version as dist_version  # noqa: PLC0415

    try:
        return dist_version("vphone")
    except PackageNotFoundError:
        return "0+unknown"


def _chosen(argv: Sequence[str]) -> str | None:
    """The top-level command named in ``argv`` (its first word that is not an option)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word
    return None


def build_parser(argv: Sequence[str] = (), *, full: bool = False) -> argparse.ArgumentParser:
    """The argument parser for ``argv``: the command group it names, and stubs for the rest.

    With ``full``, every group is registered (shell completion, tests that walk every command).
    """
    parser = Parser(
        prog="vphone",
        description="Emulated Cisco IP-phone trust engine: see every trust decision and why.",
        epilog="`vphone COMMAND --help` describes a command. Exit codes: 0 success, 1 a check "
        "failed, 2 usage, 130 interrupted.",
    )
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    chosen = _chosen(argv)
    wanted = {module for command, (module, _) in GROUPS.items() if full or command == chosen}
    registered: set[str] = set()
    for command, (module, help_text) in GROUPS.items():
        if module in wanted:
            if module not in registered:
                registered.add(module)
                importlib.import_module(module).register(sub)
        elif not wanted:  # `vphone --help`, or an unknown command: list every command
            sub.add_parser(command, help=help_text, description=help_text)
    for child in _commands(parser):
        _conventions(child)
    return parser


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every sub-command parser under ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if child.description is None and helps.get(name):
                    text = str(helps[name])
                    child.description = text[0].upper() + text[1:] + "."
                yield child
                yield from _commands(child)


def _conventions(parser: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on a command that has not defined them itself."""
    taken = parser._option_string_actions
    if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
        quiet = [o for o in ("-q", "--quiet") if o not in taken]
        if quiet:
            parser.add_argument(
                *quiet, dest="quiet", action="store_true", help="print nothing but errors"
            )
            if "--quiet" in quiet:
                parser.set_defaults(cli_quiet=True)
        verbose = [o for o in ("-v", "--verbose") if o not in taken]
        if verbose:
            parser.add_argument(
                *verbose,
                dest="verbose",
                action="count",
                default=0,
                help="say more (full reasons; the cause of an error)",
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # a group stub reached without its module (cannot happen in use)
        parser.error(f"{args.command}: no such command")
    quiet = bool(getattr(args, "cli_quiet", False) and args.quiet)
    try:
        if quiet:
            with open(os.devnull, "w") as sink:
                saved, sys.stdout = sys.stdout, sink
                try:
                    code = handler(args)
                finally:
                    sys.stdout = saved
        else:
            code = handler(args)
        sys.stdout.flush()
        return code
    except VphoneError as exc:
        print(f"vphone: {exc}", file=sys.stderr)
        if getattr(args, "verbose", 0) and exc.__cause__ is not None:
            print(f"vphone: caused by {exc.__cause__!r}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        # A fleet says how far it got (phone.scenario.fleet.FleetInterrupted); one line always.
        summary = getattr(exc, "summary", None)
        print(f"vphone: {summary() if callable(summary) else 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO):
            raise
        # `vphone ... --json > /dev/full`: the output could not be written; say so once.
        _silence_stdout()
        print(f"vphone: cannot write the output: {exc.strerror}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (a test's StringIO): nothing to do
        pass


def run() -> None:
    """Console-script entry point.

    Ctrl-C while the parser or a command group is still being imported (before :func:`main`'s
    own handler is in place) is the same one line and exit code 130, not a traceback.
    """
    try:
        code = main()
    except KeyboardInterrupt:
        print("vphone: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    sys.exit(code)
