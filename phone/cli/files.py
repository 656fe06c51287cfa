"""``vphone tlv|sgn|image``: inspect, verify, build and sign trust files.

* ``vphone tlv show FILE [--json]``: every header field and record of an ITL/CTL, the file's MD5
  and SHA-1, and whether it verifies against its own SAST record (like CUCM's ``show itl``).
* ``vphone tlv verify FILE [--cert PEM]``: exit 1 unless the signature verifies (with ``--cert``
  or, without it, with the file's own SAST record matching the signer).
* ``vphone tlv build ... -o OUT``: build and sign an ITL/CTL in CUCM's element order.
* ``vphone sgn show|verify|sign|strip``: the same for ``.sgn`` (and ``.enc.sgn``) files.
* ``vphone image show FILE``: either firmware family (legacy TLV header, or the ``CD3412AB``
  container with its payload hash check).

``show`` exits 0 whenever the file parses: the signature status is reported, not an error. A file
that does not parse prints one line, ``vphone: FILE: at byte N: problem (expected X)``, and exits
1; usage errors (a missing file, a bad ``--record``) exit 2. The clock is read at this edge (in
:mod:`phone.cli.files_input`), never in :mod:`phone.formats`.

This module is the three groups' argument tree, with every option and help text; the commands
live by the kind of file they act on:

* :mod:`phone.cli.files_tlv`: ``tlv show``, ``tlv verify``, ``tlv build``;
* :mod:`phone.cli.files_sgn`: ``sgn show``, ``sgn verify``, ``sgn sign``, ``sgn strip``;
* :mod:`phone.cli.files_image`: ``image show``;
* :mod:`phone.cli.files_input`: reading the files, certificates and signing keys named on the
  command line, the header time and file name, and :class:`FileInputError`;
* :mod:`phone.cli.files_output`: the text blocks the reports share.

The names other code imported from here before the split are re-exported (``__all__``).
"""

from __future__ import annotations

import argparse
from typing import TypeAlias

from phone.cli.lazy import handler, reexport
from phone.cli.paths import output_name

__all__ = ["DIGEST_NAMES", "KEY_PASSWORD_ENV", "register"]  # and the handlers, lazily

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

# The commands import the codecs and cryptography; the argument tree imports neither, so
# building it costs nothing (issue 17 item 4). Names once imported from here still work.
_HOMES = {
    "image_show": "phone.cli.files_image",
    "FileInputError": "phone.cli.files_input",
    **dict.fromkeys(("sgn_show", "sgn_sign", "sgn_strip", "sgn_verify"), "phone.cli.files_sgn"),
    **dict.fromkeys(("tlv_build", "tlv_show", "tlv_verify"), "phone.cli.files_tlv"),
}
__getattr__ = reexport(_HOMES)

DIGEST_NAMES = ("sha1", "sha512")
"""``--digest`` choices: the keys of :data:`phone.cli.files_input.DIGESTS` (a test checks)."""
KEY_PASSWORD_ENV = "VPHONE_KEY_PASSWORD"  # noqa: S105 - the variable name, not a password


# --- registration ------------------------------------------------------------------------------


def register(sub: Subparsers) -> None:
    """Add the ``tlv``, ``sgn`` and ``image`` command groups."""
    _register_tlv(sub)
    _register_sgn(sub)
    _register_image(sub)


def _group(sub: Subparsers, name: str, help_text: str) -> Subparsers:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    actions = parser.add_subparsers(dest=f"{name}_action", metavar="ACTION")
    actions.required = True
    return actions


def _add_signing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signer-cert", required=True, metavar="PEM", help="certificate of the signer"
    )
    parser.add_argument(
        "--signer-key", required=True, metavar="PEM", help="RSA private key of the signer"
    )
    parser.add_argument(
        "--key-password",
        metavar="PASSWORD",
        help=f"password of an encrypted signer key (default: ${KEY_PASSWORD_ENV}, if set)",
    )
    parser.add_argument(
        "--digest",
        type=str.lower,
        choices=DIGEST_NAMES,
        default="sha1",
        help="signature digest (default sha1, as CUCM writes)",
    )
    parser.add_argument(
        "--timestamp",
        metavar="WHEN",
        help="header time: Unix seconds or ISO 8601 (UTC if no offset); default now",
    )
    parser.add_argument(
        "--filename",
        metavar="NAME",
        help="file name written in the header (default: the output file's name)",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=output_name, metavar="OUT", help="file to write"
    )


def _register_tlv(sub: Subparsers) -> None:
    actions = _group(sub, "tlv", "ITL and CTL trust lists (.tlv)")

    show = actions.add_parser(
        "show", help="print header, records, checksums and signature status (show itl)"
    )
    show.add_argument("file", help="ITL or CTL file")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=handler("phone.cli.files_tlv:tlv_show"))

    verify = actions.add_parser("verify", help="exit 0 if the signature verifies, 1 if it does not")
    verify.add_argument("file", help="ITL or CTL file")
    verify.add_argument(
        "--cert",
        metavar="PEM",
        help="verify with this certificate (default: the file's SAST record matching the signer)",
    )
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.set_defaults(handler=handler("phone.cli.files_tlv:tlv_verify"))

    build = actions.add_parser(
        "build",
        help="build and sign an ITL/CTL in CUCM's element order",
        description=(
            "Build and sign an ITL or CTL. Records are written in the order given, each with "
            "CUCM's element order 1..10; the header is version 1.2 without tag 28."
        ),
    )
    build.add_argument(
        "--record",
        action="append",
        required=True,
        metavar="ROLE:CERT.pem[:DNSNAME[:IP]]",
        help=(
            "add a record (repeatable). ROLE is a name (SAST, CCM, CCM+TFTP, TFTP, CAPF, SRST, "
            "APP-SERVER, TVS) or a number; an empty CERT makes a certificateless record"
        ),
    )
    _add_signing_options(build)
    build.set_defaults(handler=handler("phone.cli.files_tlv:tlv_build"))


def _register_sgn(sub: Subparsers) -> None:
    actions = _group(sub, "sgn", "signed files (.sgn, .enc.sgn)")

    show = actions.add_parser("show", help="print the signed header and the payload checksums")
    show.add_argument("file", help=".sgn or .enc.sgn file")
    show.add_argument("--cert", metavar="PEM", help="also check the signature with this cert")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=handler("phone.cli.files_sgn:sgn_show"))

    verify = actions.add_parser(
        "verify", help="exit 0 if the signature verifies with --cert, 1 if it does not"
    )
    verify.add_argument("file", help=".sgn or .enc.sgn file")
    verify.add_argument("--cert", required=True, metavar="PEM", help="signer certificate")
    verify.add_argument("--json", action="store_true", help="print JSON instead of text")
    verify.set_defaults(handler=handler("phone.cli.files_sgn:sgn_verify"))

    sign = actions.add_parser("sign", help="sign a file into a .sgn (header version 1.0)")
    sign.add_argument("file", help="file to sign (e.g. SEP<MAC>.cnf.xml)")
    _add_signing_options(sign)
    sign.set_defaults(handler=handler("phone.cli.files_sgn:sgn_sign"))

    strip = actions.add_parser("strip", help="write the original file inside a .sgn")
    strip.add_argument("file", help=".sgn file")
    strip.add_argument(
        "-o", "--output", required=True, type=output_name, metavar="OUT", help="file to write"
    )
    strip.set_defaults(handler=handler("phone.cli.files_sgn:sgn_strip"))


def _register_image(sub: Subparsers) -> None:
    actions = _group(sub, "image", "phone firmware images")
    show = actions.add_parser(
        "show", help="print the image header (legacy TLV or CD3412AB container) and hash check"
    )
    show.add_argument("file", help="firmware file (.loads, .sbn, .sb2, .zz.sgn, ...)")
    show.add_argument(
        "--cert", metavar="PEM", help="also check the (emulated) signature with this cert"
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    show.set_defaults(handler=handler("phone.cli.files_image:image_show"))
