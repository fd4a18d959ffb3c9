"""Checks before a server binds its port: a port in use is bad input (one line, exit 2)."""

from __future__ import annotations

import errno
import socket

from ._errors import UsageError


def port_error(host: str, port: int, e: OSError) -> UsageError:
    if e.errno == errno.EADDRINUSE:
        why = "is already in use (another dashboard?)"
    elif e.errno == errno.EADDRNOTAVAIL:
        why = "is not an address of this machine"
    elif e.errno == errno.EACCES:
        why = "needs privileges (ports below 1024)"
    else:
        why = f"cannot be bound: {e.strerror or e}"
    return UsageError(f"{host}:{port} {why}; pick another --port (or --host)")


def check_port(host: str, port: int) -> None:
    """Raise ``UsageError`` unless ``host:port`` can be bound now, as the server would bind it
    (``SO_REUSEADDR``, like wsgiref's ``HTTPServer``)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError(f"unknown host {host!r} ({e.strerror}); fix --host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise port_error(host, port, e) from None
