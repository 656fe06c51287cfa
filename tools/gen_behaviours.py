"""Write docs/behaviours.md from the behaviour table (phone/catalog/behaviours.toml).

``vphone explain item N`` and the page read the same data, so they cannot drift; a test checks
that the committed page equals what this tool writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from phone.catalog.behaviours import render_markdown

TARGET = Path(__file__).resolve().parents[1] / "docs" / "behaviours.md"


def main(argv: list[str] | None = None) -> int:
    """Write the page, or with ``--check`` exit 1 when the committed page is stale."""
    args = sys.argv[1:] if argv is None else argv
    text = render_markdown()
    if "--check" in args:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale: run python tools/gen_behaviours.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
