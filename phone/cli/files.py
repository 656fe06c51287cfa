"""``vphone tlv|sgn|image``: inspect, verify, build and sign trust files (placeholder)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the file commands."""
    del sub
