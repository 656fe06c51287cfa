"""TFTP: the phone's client on tftpy, and the lab's read-only server (item 4: TFTP/69).

Client: :func:`fetch_tftp` downloads one file the way a phone does: the ``blksize`` option
(1428, what modern phones ask for so a block fits an Ethernet frame), a per-packet timeout and
a number of attempts, and maps tftpy's exceptions onto :mod:`phone.errors`. tftpy is the
user's choice for the client and stays so.

Server: :class:`TftpFileServer` is our own loop (:mod:`phone.net.tftp_server`), re-exported
here. tftpy's ``TftpServer`` was used until issue 13: its ``listen()`` dies on a malformed
datagram (a non-ASCII name, a non-numeric ``blksize``, a DATA or ACK cut short), and every
transfer in flight died with it; see that module for why it was replaced rather than wrapped.
"""

from __future__ import annotations

import io
import logging
import socket

import tftpy

from phone.errors import FileNotFoundOnServer, NetworkError, TransferTimeout
from phone.net.tftp_server import FileProvider, TftpFileServer, TftpStats

__all__ = [
    "DEFAULT_BLKSIZE",
    "DEFAULT_TFTP_PORT",
    "FileProvider",
    "TftpFileServer",
    "TftpStats",
    "fetch_tftp",
]

DEFAULT_TFTP_PORT = 69
DEFAULT_BLKSIZE = 1428  # 1500-byte Ethernet MTU minus IP, UDP and TFTP headers

# tftpy's client logs every transfer at INFO and every not-found at ERROR. A library must not print
# through logging's last-resort handler; applications that configure logging still see it.
logging.getLogger("tftpy").addHandler(logging.NullHandler())


def fetch_tftp(
    host: str,
    port: int,
    name: str,
    *,
    blksize: int = DEFAULT_BLKSIZE,
    timeout: float = 2.0,
    retries: int = 3,
) -> bytes:
    """Download ``name`` from the TFTP server at ``host``:``port``.

    ``timeout`` is how long to wait for each packet; ``retries`` how many timeouts in a row
    end the transfer (tftpy resends the last packet in between), so a silent server costs about
    ``timeout * retries`` seconds.

    Raises:
        FileNotFoundOnServer: the server answered TFTP error 1.
        TransferTimeout: no answer within the retry budget.
        NetworkError: any other failure (an error packet, an unknown host, a broken packet).
    """
    buffer = io.BytesIO()  # a download target may be BytesIO (python-libraries.md 2.2)
    try:
        # Resolve first: tftpy opens its socket before resolving and leaks it on failure.
        address = socket.gethostbyname(host)
    except OSError as exc:
        raise NetworkError(f"TFTP server {host} cannot be resolved: {exc}") from None
    try:
        client = tftpy.TftpClient(address, port, options={"blksize": blksize})
        client.download(name, buffer, timeout=timeout, retries=max(1, retries))
    except tftpy.TftpFileNotFoundError:
        raise FileNotFoundOnServer(name) from None
    except tftpy.TftpTimeout:
        raise TransferTimeout(
            f"no TFTP answer from {host}:{port} for {name} ({max(1, retries)} x {timeout:g} s)"
        ) from None
    except tftpy.TftpException as exc:
        raise NetworkError(f"TFTP {host}:{port} {name}: {exc}") from None
    except OSError as exc:  # unknown host, unreachable network
        raise NetworkError(f"TFTP {host}:{port}: {exc}") from None
    except Exception as exc:  # tftpy raises untyped errors (struct, unicode) on broken packets
        raise NetworkError(f"TFTP {host}:{port} {name}: broken transfer ({exc!r})") from None
    return buffer.getvalue()
