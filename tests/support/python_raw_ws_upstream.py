#!/usr/bin/python3
"""A hostile WebSocket upstream that speaks just enough RFC 6455 by hand to misbehave on purpose.

python3-websockets refuses to send what this script exists to send (invalid UTF-8 in a text
frame, endless continuation frames, reserved close codes, a handshake that never ends), so frames
are built here from raw bytes on an asyncio TCP server. Standard library only.

It binds --host (default 127.0.0.1) on --port (0 = ephemeral), prints exactly one line
"PORT <n>" on stdout and flushes, then serves until SIGTERM/SIGINT or EOF on stdin (the test
holds the write end, so a test process that dies leaves nothing behind). Diagnostics go to stderr.

Until it is triggered, every connection is well-behaved: the opening handshake is answered with
101, pings get pongs with the same payload, text messages are echoed, a close frame is answered
with a close frame. The misbehaviour starts on every connection open at that moment when the test
writes the line "go" to stdin (so a test can wait until wsvisor is HEALTHY and then time the
detection from a known instant); connections opened later behave again. After acting on N
connections it prints "WENT <N>" on stderr.

--mode:
  echo                  never misbehave (a plain upstream on a fixed port, for restarts)
  accept-no-handshake   accept TCP, read and discard the request, never answer (no trigger)
  reset-handshake       read the opening handshake request, then reset the TCP connection
                        (SO_LINGER 0) instead of answering (no trigger)
  reset-on-accept       reset every TCP connection as soon as it is accepted (no trigger)
  fragments             send a text message as --count continuation frames of --fragment-bytes
                        each (0 = never finish the message), pongs interleaved as RFC 6455 allows
  flood                 send --count text messages of --message-bytes as fast as the socket takes
  invalid-utf8          send one text frame whose payload is not UTF-8
  close-code=N          send a close frame with code N (any 0..65535, reserved ones too)
  big                   send one binary message of --message-bytes (header first, then the
                        payload in 64 KiB writes while the peer still reads)
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import socket
import struct
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def log(*parts):
    print("python_raw_ws_upstream:", *parts, file=sys.stderr, flush=True)


def frame_header(opcode, length, fin=True):
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def frame(opcode, payload=b"", fin=True):
    return frame_header(opcode, len(payload), fin) + payload


class Connection:
    def __init__(self, reader, writer, args):
        self.reader = reader
        self.writer = writer
        self.args = args
        # Whole frames only: a pong must never land inside a data frame being written.
        self.write_lock = asyncio.Lock()
        self.closed = False
        self.close_sent = False

    async def send(self, data):
        async with self.write_lock:
            await self.write_now(data)

    async def write_now(self, data):
        if self.closed:
            raise ConnectionError("closed")
        self.writer.write(data)
        await self.writer.drain()

    async def handshake(self):
        request = await self.reader.readuntil(b"\r\n\r\n")
        key = None
        for line in request.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        if key is None:
            self.writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await self.writer.drain()
            return False
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        await self.writer.drain()
        return True

    async def read_frame(self):
        first, second = await self.reader.readexactly(2)
        opcode = first & 0x0F
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        mask = await self.reader.readexactly(4) if second & 0x80 else b"\0\0\0\0"
        data = await self.reader.readexactly(length)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        return opcode, payload

    async def serve_frames(self):
        """Answers the client's frames until it closes: the well-behaved part of every mode."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == OP_PING:
                await self.send(frame(OP_PONG, payload))
            elif opcode == OP_TEXT:
                await self.send(frame(OP_TEXT, payload))
            elif opcode == OP_CLOSE:
                if not self.close_sent:  # else this is the answer to our own close frame
                    try:
                        await self.send(frame(OP_CLOSE, payload[:2]))
                    except ConnectionError:
                        pass
                return

    # ----- misbehaviour, run as a task beside serve_frames() -----

    async def misbehave(self, mode):
        args = self.args
        if mode == "fragments":
            piece = b"f" * args.fragment_bytes
            await self.send(frame(OP_TEXT, piece, fin=False))
            sent = 1
            continuation = frame(OP_CONT, piece, fin=False)
            while args.count == 0 or sent < args.count - 1:
                # Many frames per lock hold so the flood is fast; the lock is released between
                # batches so that pongs get out in time.
                n = 256 if args.count == 0 else min(256, args.count - 1 - sent)
                async with self.write_lock:
                    self.writer.write(continuation * n)
                    sent += n
                    await self.write_now(b"")
                await asyncio.sleep(0)
            await self.send(frame(OP_CONT, piece, fin=True))
            log(f"sent a message in {sent + 1} fragments")
        elif mode == "flood":
            message = frame(OP_TEXT, b"m" * args.message_bytes)
            batch = 1000
            for start in range(0, args.count, batch):
                async with self.write_lock:
                    self.writer.write(message * min(batch, args.count - start))
                    await self.write_now(b"")
                await asyncio.sleep(0)
            log(f"flooded {args.count} messages of {args.message_bytes} bytes")
        elif mode == "invalid-utf8":
            await self.send(frame(OP_TEXT, b"bad \xff\xfe\xfd utf-8"))
        elif mode.startswith("close-code="):
            code = int(mode.split("=", 1)[1])
            self.close_sent = True
            await self.send(frame(OP_CLOSE, struct.pack("!H", code) + f"odd code {code}".encode()))
        elif mode == "big":
            chunk = b"b" * 65536
            remaining = args.message_bytes
            async with self.write_lock:
                self.writer.write(frame_header(OP_BINARY, remaining))
                while remaining > 0:
                    n = min(remaining, len(chunk))
                    await self.write_now(chunk[:n])
                    remaining -= n
            log(f"sent a message of {args.message_bytes} bytes")

    async def run(self, server):
        try:
            if self.args.mode == "accept-no-handshake":
                while await self.reader.read(4096):
                    pass
                return
            if self.args.mode in ("reset-handshake", "reset-on-accept"):
                if self.args.mode == "reset-handshake":
                    await self.reader.readuntil(b"\r\n\r\n")
                sock = self.writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.writer.transport.abort()
                return
            if not await self.handshake():
                return
            server.open.add(self)
            await self.serve_frames()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            server.open.discard(self)
            self.writer.close()


class Server:
    def __init__(self, args):
        self.args = args
        self.open = set()
        self.tasks = set()

    async def on_connect(self, reader, writer):
        await Connection(reader, writer, self.args).run(self)

    def trigger(self):
        targets = list(self.open)
        for connection in targets:
            task = asyncio.create_task(self.guarded(connection))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        log(f"WENT {len(targets)}")

    async def guarded(self, connection):
        try:
            await connection.misbehave(self.args.mode)
        except (ConnectionError, OSError) as error:
            log(f"peer went away while misbehaving: {error!r}")


async def main(args):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop():
        if not stop.done():
            stop.set_result(None)

    loop.add_signal_handler(signal.SIGTERM, request_stop)
    loop.add_signal_handler(signal.SIGINT, request_stop)

    server_state = Server(args)
    stdin_fd = sys.stdin.fileno()
    pending = bytearray()

    def on_stdin():
        try:
            data = os.read(stdin_fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(stdin_fd)
            request_stop()
            return
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            if line.strip() == b"go":
                server_state.trigger()

    loop.add_reader(stdin_fd, on_stdin)
    server = await asyncio.start_server(server_state.on_connect, args.host, args.port,
                                        reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    async with server:
        await stop
    for connection in list(server_state.open):
        connection.writer.close()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", default="echo")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--fragment-bytes", type=int, default=1)
    parser.add_argument("--message-bytes", type=int, default=16)
    args = parser.parse_args(argv)
    modes = ("echo", "accept-no-handshake", "reset-handshake", "reset-on-accept", "fragments",
             "flood", "invalid-utf8", "big")
    if args.mode not in modes and not args.mode.startswith("close-code="):
        parser.error(f"unknown --mode {args.mode}")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
    sys.exit(0)
