#!/usr/bin/python3
"""A WebSocket upstream for wsvisor's durability tests that reports what happens to every
connection, so a test can see what wsvisor did from the other end of the wire.

Runs on Debian's python3-websockets (10.4; legacy asyncio API). Binds 127.0.0.1 on an ephemeral
port and writes one line per fact on stdout, flushed at once:

    PORT <port>
    OPEN <conn> <monotonic seconds> <path>
    CLOSE <conn> <monotonic seconds> <close code> <path>

<conn> numbers connections from 1 in accept order; <path> is the request path (the tests put the
endpoint id there, so connections can be counted per endpoint). The time is CLOCK_MONOTONIC,
which is system-wide on Linux, so the test process can compare it with its own time.monotonic().
The close code is the one the client sent in its close frame when the client closed first (1001
when wsvisor shuts down gracefully), 1006 when the TCP connection ended without a close frame
(wsvisor killed).

Pings are answered by websockets itself; text messages are echoed. Exits 0 on SIGTERM/SIGINT or
when stdin reaches EOF (the test process holds the pipe, so a dead test leaves nothing behind).
Connections still open then are not reported as closed.
"""

import asyncio
import itertools
import os
import signal
import sys
import time

import websockets

_CONNECTION_NUMBERS = itertools.count(1)


def report(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def handle(websocket):
    path = websocket.path
    number = next(_CONNECTION_NUMBERS)
    report(f"OPEN {number} {time.monotonic():.6f} {path}")
    try:
        async for message in websocket:
            if isinstance(message, str):
                await websocket.send(message)
    except websockets.ConnectionClosed:
        pass
    await websocket.wait_closed()
    report(f"CLOSE {number} {time.monotonic():.6f} {websocket.close_code} {path}")


async def main():
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop():
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, request_stop)
    loop.add_signal_handler(signal.SIGINT, request_stop)
    stdin_fd = sys.stdin.fileno()

    def on_stdin():
        try:
            data = os.read(stdin_fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin_fd)
            request_stop()

    loop.add_reader(stdin_fd, on_stdin)
    # backlog: a restore dials many endpoints within a short window.
    server = await websockets.serve(handle, "127.0.0.1", 0, ping_interval=None, close_timeout=1,
                                    backlog=1024)
    report(f"PORT {server.sockets[0].getsockname()[1]}")
    await stop
    # Shutting down is not under test: drop the connections without reporting them.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
