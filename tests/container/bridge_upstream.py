#!/usr/bin/python3
"""tests/durability/recording_upstream.py, listening on the container network's gateway address.

A container on the engine's bridge network reaches the host at the bridge's gateway address, not
at 127.0.0.1. This runs recording_upstream.py's main() unchanged (same output lines: PORT, OPEN,
CLOSE with the close code; same exit on SIGTERM or stdin EOF) with its listener on ADDRESS, an
ephemeral port. The socket is bound with IP_FREEBIND, so it can be made before the engine has
created the bridge (it does so when the first container starts), and it listens on that address
only: nothing outside this machine can reach it.

Usage: bridge_upstream.py ADDRESS
"""

import asyncio
import os
import socket
import sys

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                "durability"))

import recording_upstream  # noqa: E402  (after the path set-up above)

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # linux/in.h


def main(address):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
    listener.bind((address, 0))
    serve = recording_upstream.websockets.serve

    def serve_on_listener(handler, _host, _port, **options):
        # recording_upstream.main() asks for 127.0.0.1 port 0; give it our socket instead.
        return serve(handler, sock=listener, **options)

    recording_upstream.websockets.serve = serve_on_listener
    asyncio.run(recording_upstream.main())


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} ADDRESS")
    main(sys.argv[1])
