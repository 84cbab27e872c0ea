#!/usr/bin/python3
"""A foreign WebSocket upstream for wsvisor's integration tests.

Runs on Debian's python3-websockets (10.4 on Debian 12; the legacy asyncio API used here exists
from 10.0). It binds 127.0.0.1 (port 0 = ephemeral unless --port), prints exactly one line
"PORT <n>" on stdout and flushes, then serves until SIGTERM or SIGINT, on which it closes every
connection with 1001 and exits 0. It prints nothing else on stdout; errors go to stderr.

Behaviour, per connection:
  - pings are answered by websockets itself; the server never pings (ping_interval=None);
  - text messages are echoed back (binary messages are ignored);
  - with --send-every SECONDS, "tick" is sent to every client every SECONDS (a PASSIVE-mode
    heartbeat source).

Tests make a hung upstream by pausing the process (SIGSTOP): the kernel keeps its TCP connections
open, but nothing answers. With --exit-on-stdin-eof it also exits when stdin reaches EOF, so a
test process that dies does not leave it serving forever (the test holds the pipe's write end).
"""

import argparse
import asyncio
import os
import signal
import sys

import websockets

CLIENTS = set()


async def handle(websocket):
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            if isinstance(message, str):
                await websocket.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        CLIENTS.discard(websocket)


async def send_ticks(period):
    while True:
        await asyncio.sleep(period)
        websockets.broadcast(CLIENTS, "tick")


def positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


async def main(args):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop():
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, request_stop)
    loop.add_signal_handler(signal.SIGINT, request_stop)

    if args.exit_on_stdin_eof:
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

    async with websockets.serve(
        handle,
        args.host,
        args.port,
        ping_interval=None,
        close_timeout=args.close_timeout,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()
        ticker = None
        if args.send_every is not None:
            ticker = asyncio.create_task(send_ticks(args.send_every))
        await stop
        if ticker is not None:
            ticker.cancel()
    # Leaving "async with" closed the listener and every connection (1001, going away), waiting
    # at most close_timeout for each client's close frame.


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks an ephemeral port")
    parser.add_argument("--send-every", type=positive_float, metavar="SECONDS",
                        help='send "tick" to every client this often')
    parser.add_argument("--close-timeout", type=positive_float, default=1.0, metavar="SECONDS",
                        help="how long to wait for a client's close frame on shutdown")
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin reaches EOF (the parent test process is gone)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
    sys.exit(0)
