"""Phone models: the differences between real models that matter to trust decisions.

The rows are data (:mod:`phone.catalog.table`, each with its sources and [G] marks; the row type
is :mod:`phone.catalog.rows`); this module indexes them by model number.
"""

from __future__ import annotations

from phone.catalog.rows import FIELDS, ImageFormat, Model, StatusKey, Transport
from phone.catalog.table import ROWS
from phone.errors import UsageError

__all__ = [
    "DEFAULT_MODEL",
    "FIELDS",
    "MODELS",
    "ImageFormat",
    "Model",
    "StatusKey",
    "Transport",
    "get_model",
]

MODELS: dict[str, Model] = {m.name: m for m in ROWS}

DEFAULT_MODEL = "8841"


def get_model(name: str) -> Model:
    """The model row for ``name`` ("8841", "CP-8841", "cp-8841" and "7925g" all work)."""
    key = name.upper().removeprefix("CP-")
    try:
        return MODELS[key]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise UsageError(f"unknown phone model {name!r}; known models: {known}") from None
