#!/usr/bin/python3
"""A WebSocket supervisor written the usual way with Python `websockets` (Debian 10.4, asyncio):
one task per endpoint that connects with the library's own keepalive (ping_interval,
ping_timeout) and redials after about a second whenever the connection ends.

    /usr/bin/python3 supervisor.py --endpoints FILE [--interval-ms 1000] [--timeout-ms 1000]
                                   [--ca PEM]

FILE has one "id url" per line. For wss:// URLs, --ca is the CA the server certificate must chain
to: one `ssl` context built from it (hostname checking on, as `ssl.create_default_context` has
it) serves every connection. Prints one JSON line of counters per second on stdout. Pings are
counted by a protocol subclass (the library keeps no count); everything else is stock.
"""
import argparse
import asyncio
import json
import random
import ssl
import sys
import time

import websockets
import websockets.client

STATS = {"open": 0, "pings": 0, "opened": 0, "closed": 0, "errors": 0}


class CountingProtocol(websockets.client.WebSocketClientProtocol):
    async def ping(self, data=None):
        STATS["pings"] += 1
        return await super().ping(data)


async def supervise(url, interval, timeout, dial_slots, tls_context):
    tls = {"ssl": tls_context} if tls_context and url.startswith("wss://") else {}
    while True:
        try:
            async with dial_slots:
                ws = await websockets.connect(
                    url, ping_interval=interval, ping_timeout=timeout,
                    create_protocol=CountingProtocol, open_timeout=20, **tls)
            STATS["open"] += 1
            STATS["opened"] += 1
            try:
                await ws.wait_closed()
            finally:
                STATS["open"] -= 1
                STATS["closed"] += 1
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException):
            STATS["errors"] += 1
        await asyncio.sleep(1 + random.random() * 0.2)


async def report():
    while True:
        await asyncio.sleep(1)
        print(json.dumps({"t_mono_s": time.monotonic(), **STATS}), flush=True)


async def stdin_closed():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.readline():
        pass


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", required=True)
    parser.add_argument("--interval-ms", type=int, default=1000)
    parser.add_argument("--timeout-ms", type=int, default=1000)
    parser.add_argument("--connect-concurrency", type=int, default=500)
    parser.add_argument("--ca", default=None, help="CA file for wss:// URLs")
    args = parser.parse_args()
    tls_context = ssl.create_default_context(cafile=args.ca) if args.ca else None
    with open(args.endpoints) as f:
        urls = [line.split()[1] for line in f if line.strip()]
    dial_slots = asyncio.Semaphore(args.connect_concurrency)
    tasks = [asyncio.create_task(supervise(u, args.interval_ms / 1000, args.timeout_ms / 1000,
                                           dial_slots, tls_context)) for u in urls]
    tasks.append(asyncio.create_task(report()))
    await stdin_closed()  # the runner closes stdin to stop us


if __name__ == "__main__":
    asyncio.run(main())
