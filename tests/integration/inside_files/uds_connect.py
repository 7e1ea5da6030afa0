# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""ssh ProxyCommand of the inside controller: joins ssh's stdin and stdout to a UNIX socket.

The inside controller's network namespace has only loopback, so ssh cannot reach a test host
by address; a relay in the root namespace listens on one UNIX socket per host (the file system
crosses network namespaces) and forwards to that host's sshd. This script is the ssh end of
that path. Standard library only: a minimal Debian 12 controller has no nc/socat, only python3.

Usage (ssh_config): ProxyCommand /path/to/python3 uds_connect.py /path/to/HOST.sock
"""

from __future__ import annotations

import os
import socket
import sys
import threading

CHUNK = 65536


def _upstream(sock: socket.socket) -> None:
    """ssh -> socket until ssh closes its end, then half-close so sshd sees the EOF."""
    try:
        while True:
            data = os.read(0, CHUNK)
            if not data:
                break
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _downstream(sock: socket.socket) -> None:
    """socket -> ssh until the relay closes (sshd hung up)."""
    while True:
        data = sock.recv(CHUNK)
        if not data:
            return
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]


def main(path: str) -> int:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sys.stderr.write("uds_connect: cannot connect to %s: %s\n" % (path, exc))
        return 255
    threading.Thread(target=_upstream, args=(sock,), daemon=True).start()
    try:
        _downstream(sock)
    except OSError:
        return 255
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
