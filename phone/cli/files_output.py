"""The text the file commands print: the blocks every ``show`` and ``verify`` shares.

The reports read the JSON views of :mod:`phone.formats.views` (what ``--json`` prints), so the
text and the JSON cannot disagree: a file block with the checksums, the signed header, the
payload, and the signature status line.
"""

from __future__ import annotations

from collections.abc import Sequence

from phone.formats.views import JSONDict, checksums


def emit_json(view: JSONDict) -> None:
    """Print a JSON view (``--json``)."""
    import json  # noqa: PLC0415 - only --json needs it; the text report starts faster without

    print(json.dumps(view, indent=2))


def out(line: str = "") -> None:
    """Print one line of the text report."""
    print(line)


def print_rows(rows: Sequence[tuple[str, object]], indent: str = "  ") -> None:
    """Print ``label  value`` rows with the labels aligned; an empty value prints ``-``."""
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        shown = "-" if value is None or value == "" else value
        out(f"{indent}{label.ljust(width)}  {shown}")


def file_block(path: str, kind: str, data: bytes) -> None:
    """The first block of every ``show``: the file, its kind, length and checksums."""
    sums = checksums(data)
    out(f"{path}  ({kind})")
    print_rows(
        [
            ("Length", f"{sums['length']} bytes"),
            ("MD5", sums["md5"]),
            ("SHA-1", sums["sha1"]),
        ]
    )


def header_block(view: JSONDict) -> None:
    """The signed header of a trust list, ``.sgn`` or legacy image."""
    signer = view["signer"]
    announced = view["modulus_bytes"]
    size = f"{view['signature_bytes']} bytes"
    if announced is None:
        size += f" (modulus index {view['modulus_index']} is unknown)"
    elif announced != view["signature_bytes"]:
        size += f" (header announces {announced})"
    else:
        size += f" (RSA-{announced * 8})"
    timestamp = view["timestamp"]
    rows: list[tuple[str, object]] = [
        ("Version", view["version"]),
        ("Header length", view["length"]),
    ]
    if view["signer_version"] is not None:
        rows.append(("Signer version", view["signer_version"]))
    rows += [
        ("Signer", signer["name"]),
        ("Signer serial", signer["serial"]),
        ("Signer issuer", signer["issuer"]),
        ("Digest", view["digest"]),
        ("Signature", f"{view['signature_algorithm']}, {size}"),
        ("File name", view["filename"]),
        (
            "Timestamp",
            None if timestamp is None else f"{timestamp} ({view['timestamp_utc']})",
        ),
        ("Layout", view["layout"]),
    ]
    if view["unknown_tags"]:
        rows.append(("Unknown tags", ", ".join(str(t) for t in view["unknown_tags"])))
    encryption = view["encryption"]
    if encryption is not None:
        rows += [
            ("Encrypted", f"AES-128-CBC, key wrapped for an RSA-{encryption['key_bits']} key"),
            ("Pad bytes", encryption["padding_count"]),
            (
                "Plain digest",
                f"{encryption['plaintext_digest']} {encryption['plaintext_digest_value']}",
            ),
        ]
    out()
    out("Header")
    print_rows(rows)


def status_text(signature: JSONDict) -> str:
    """A signature check in words: ``valid``, ``INVALID`` or ``not checked``, and why."""
    valid = signature["valid"]
    word = "valid" if valid is True else "INVALID" if valid is False else "not checked"
    return f"{word}: {signature['reason']}"


def report_verification(path: str, signature: JSONDict, as_json: bool) -> int:
    """Print the outcome of a ``verify``; exit 0 only if the signature verifies."""
    if as_json:
        emit_json({"file": path, "signature": signature})
    else:
        out(f"{path}: signature {status_text(signature)}")
    return 0 if signature["valid"] is True else 1


def payload_block(view: JSONDict, *, encrypted: bool) -> None:
    """The payload's length and checksums (``.sgn`` and images)."""
    payload = view["payload"]
    out()
    out("Payload" + (" (encrypted)" if encrypted else ""))
    print_rows(
        [
            ("Length", f"{payload['length']} bytes"),
            ("MD5", payload["md5"]),
            ("SHA-1", payload["sha1"]),
        ]
    )
