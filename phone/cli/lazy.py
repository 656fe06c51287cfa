"""Handlers named by ``"module:function"``, imported when their command runs.

A command-group module registers its sub-commands with :func:`handler` instead of importing
the functions that run them, so building the parser imports nothing but argparse and
``vphone tlv show`` does not pay for the lab, the network or the scenario runner (issue 17
item 4). A group module re-exports the names it used to import through :func:`reexport`.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Mapping
from typing import Any

Handler = Callable[[argparse.Namespace], int]


class LazyHandler:
    """Calls ``module.function(args)``, importing ``module`` on the first call."""

    def __init__(self, target: str) -> None:
        self.module, _, self.function = target.partition(":")
        if not self.module or not self.function:
            raise ValueError(f"a lazy handler is 'module:function', not {target!r}")

    def __call__(self, args: argparse.Namespace) -> int:
        """Run the command."""
        function: Handler = getattr(importlib.import_module(self.module), self.function)
        return function(args)

    def __repr__(self) -> str:
        return f"LazyHandler('{self.module}:{self.function}')"


def handler(target: str) -> Handler:
    """The handler ``"module:function"``, imported only when the command runs."""
    return LazyHandler(target)


def reexport(names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``names[name]`` on first use."""

    def getattr_(name: str) -> Any:  # noqa: ANN401 - whatever the module holds
        module = names.get(name)
        if module is None:
            raise AttributeError(name)
        return getattr(importlib.import_module(module), name)

    return getattr_
