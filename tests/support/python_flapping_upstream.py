#!/usr/bin/python3
"""A WebSocket upstream whose connections keep dropping: a flapping upstream for many endpoints.

Runs on Debian's python3-websockets (10.4 on Debian 12). It binds 127.0.0.1 (port 0 = ephemeral),
prints exactly one line "PORT <n>" on stdout and flushes, then serves until SIGTERM or SIGINT, or
EOF on stdin with --exit-on-stdin-eof (the test holds the pipe's write end, so a test process that
dies leaves nothing behind). Errors go to stderr.

Every connection answers pings (websockets does that itself) and echoes text, and is closed by the
server with 1001 after a lifetime drawn uniformly from [--min-lifetime, --max-lifetime] seconds:
the supervisor sees the endpoint healthy, then lost (closed_by_peer), then healthy again after it
redials. Lifetimes are drawn from --seed, so a run's pattern of drops can be repeated. The process
raises its open-files soft limit to the hard one, so one upstream serves a thousand endpoints.
"""

import argparse
import asyncio
import os
import random
import resource
import signal
import sys

import websockets


def positive_float(text):
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def raise_open_files_limit():
    """One socket per connection: a thousand endpoints need more than the usual soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(args):
    raise_open_files_limit()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    lifetimes = random.Random(args.seed)

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

    async def handle(websocket):
        lifetime = lifetimes.uniform(args.min_lifetime, args.max_lifetime)

        async def echo():
            async for message in websocket:
                if isinstance(message, str):
                    await websocket.send(message)

        try:
            await asyncio.wait_for(echo(), timeout=lifetime)
        except asyncio.TimeoutError:
            await websocket.close(code=1001, reason="flapping")
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(handle, "127.0.0.1", 0, ping_interval=None, close_timeout=1,
                                backlog=4096) as server:
        sys.stdout.write(f"PORT {server.sockets[0].getsockname()[1]}\n")
        sys.stdout.flush()
        await stop


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-lifetime", type=positive_float, default=1.0, metavar="SECONDS")
    parser.add_argument("--max-lifetime", type=positive_float, default=3.0, metavar="SECONDS")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--exit-on-stdin-eof", action="store_true",
                        help="exit when stdin reaches EOF (the parent test process is gone)")
    args = parser.parse_args(argv)
    if args.max_lifetime < args.min_lifetime:
        parser.error("--max-lifetime must not be less than --min-lifetime")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
    sys.exit(0)
