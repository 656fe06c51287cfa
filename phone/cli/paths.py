"""Argument types for the files a command writes: checked when the command line is read.

A run that can only write its report at the end (``scenario run --junit``) must not discover an
unwritable path after minutes of work (issue 18, friction 2): ``type=output_file`` refuses it
at parse time, with the sub-command's usage and exit code 2. Nothing is created or truncated
here; the check is that the file could be written now.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def output_file(text: str) -> Path:
    """An argparse type: a path the command may write (``-`` is not special)."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, not a file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: no folder {parent}")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: folder {parent} is not writable")
    return path


def output_folder(text: str) -> Path:
    """An argparse type: a folder the command may create or write files in."""
    path = Path(text)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write in {text}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"cannot write in {text}: {existing} is not writable")
    return path


def output_name(text: str) -> str:
    """:func:`output_file`, keeping the name as given (for commands that take a ``str``)."""
    output_file(text)
    return text
