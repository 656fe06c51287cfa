"""``vphone image show``: phone firmware images of either family.

A legacy image is a signed header over the payload (shown like a ``.sgn``); a ``CD3412AB``
container is checked for its payload hash, and for its (emulated) signature with ``--cert``.
"""

from __future__ import annotations

import argparse

from cryptography.hazmat.primitives.asymmetric import rsa

from phone.cli.files_input import about, load_certificate, read_input
from phone.cli.files_output import (
    emit_json,
    file_block,
    header_block,
    out,
    payload_block,
    print_rows,
    status_text,
)
from phone.cli.files_sgn import verify_signed
from phone.errors import SignatureError
from phone.formats.firmware import ContainerImage, parse_image
from phone.formats.views import JSONDict, checksums, container_view, signed_view


def _verify_container(image: ContainerImage, cert_path: str | None) -> JSONDict:
    if cert_path is None:
        return {
            "valid": None,
            "reason": "Cisco's image key is unknown (pass --cert for a lab image)",
        }
    key = load_certificate(cert_path).public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return {"valid": False, "reason": f"{cert_path} does not hold an RSA key"}
    try:
        image.verify(key)
    except SignatureError as exc:
        return {"valid": False, "reason": str(exc)}
    return {"valid": True, "reason": f"payload hash and signature verify with {cert_path}"}


def image_show(args: argparse.Namespace) -> int:
    """``vphone image show``: exit 0 whenever the image parses."""
    path: str = args.file
    data = read_input(path)
    with about(path):
        image = parse_image(data)
    if isinstance(image, ContainerImage):
        view: JSONDict = {
            "file": {"path": path, **checksums(data)},
            "family": "container",
            **container_view(image),
            "signature": _verify_container(image, args.cert),
        }
    else:
        signature = verify_signed(image, args.cert)
        if args.cert is None:
            signature["reason"] = (
                "Cisco's firmware key and signature coverage are unknown "
                "(pass --cert for a lab image)"
            )
        view = {
            "file": {"path": path, **checksums(data)},
            "family": "legacy",
            **signed_view(image),
            "signature": signature,
        }
    if args.json:
        emit_json(view)
        return 0
    if isinstance(image, ContainerImage):
        _show_container(path, data, view)
    else:
        file_block(path, "legacy signed image", data)
        header_block(view["header"])
        payload_block(view, encrypted=False)
    out()
    out(f"Signature {status_text(view['signature'])}")
    return 0


def _show_container(path: str, data: bytes, view: JSONDict) -> None:
    check = view["hash"]
    file_block(path, "CD3412AB container image", data)
    out()
    out("Header")
    print_rows(
        [
            ("Name", view["name"]),
            ("Header length", view["header_length"]),
            ("Payload length", view["payload_length"]),
            ("Signature", f"{view['signature_bytes']} bytes"),
            ("Stored SHA-256", check["stored"]),
            ("Payload SHA-256", check["computed"]),
            ("Hash check", "ok" if check["ok"] else "MISMATCH (Checksum Error)"),
        ]
    )
    payload_block(view, encrypted=False)
