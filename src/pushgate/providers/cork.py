"""TCP_CORK on sockets we do not own (libcurl's connections), by file descriptor.

Why: libcurl writes each HTTP/2 request (its HEADERS and DATA frames) to the connection with a
send() of its own, and with TCP_NODELAY each send leaves as a segment at once: one
transmission per push, which on a busy connection cost a delivery worker about a sixth of its
CPU (issue 13; on loopback the sender also pays for the receiver's TCP input). A corked socket
gathers those writes, and uncorking sends them together, in full segments, at once: around one
`socket_action` call, which starts every request waiting for the connection, nothing is
delayed, only coalesced.

Linux only (TCP_CORK); elsewhere `available` is False and nothing is corked. Python's socket
module cannot set options on a bare descriptor without taking it over, hence libc's
setsockopt through ctypes (about a microsecond a call).
"""

from __future__ import annotations

import ctypes
import socket

_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)
_IPPROTO_TCP = socket.IPPROTO_TCP
_ON = ctypes.c_int(1)
_OFF = ctypes.c_int(0)
_SIZE = ctypes.sizeof(ctypes.c_int)

_setsockopt = None
_getsockopt = None
if _TCP_CORK is not None:
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _setsockopt = _libc.setsockopt
        _getsockopt = _libc.getsockopt
    except (OSError, AttributeError):
        _setsockopt = _getsockopt = None
    else:
        _setsockopt.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_uint32,
        )
        _setsockopt.restype = ctypes.c_int
        _getsockopt.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_uint32),
        )
        _getsockopt.restype = ctypes.c_int

available = _setsockopt is not None
_ON_P = ctypes.addressof(_ON)
_OFF_P = ctypes.addressof(_OFF)


def can_cork(fd: int) -> bool:
    """Whether `fd` is a TCP socket that takes TCP_CORK (not, say, libcurl's internal
    socketpair)."""
    if _getsockopt is None or _TCP_CORK is None:
        return False
    value = ctypes.c_int(0)
    size = ctypes.c_uint32(_SIZE)
    answer: int = _getsockopt(fd, _IPPROTO_TCP, _TCP_CORK, ctypes.byref(value), ctypes.byref(size))
    return answer == 0


def cork(fd: int) -> None:
    if _setsockopt is not None:
        _setsockopt(fd, _IPPROTO_TCP, _TCP_CORK, _ON_P, _SIZE)


def uncork(fd: int) -> None:
    """Send what the socket gathered now. Harmless on a descriptor closed meanwhile."""
    if _setsockopt is not None:
        _setsockopt(fd, _IPPROTO_TCP, _TCP_CORK, _OFF_P, _SIZE)
