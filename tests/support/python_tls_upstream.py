#!/usr/bin/python3
"""A wss:// upstream for wsvisor's TLS tests, on Python's ssl module (OpenSSL, but not our code).

It binds --host (default 127.0.0.1) on an ephemeral port, serves TLS with --cert/--key (PEM),
prints exactly one line "PORT <n>" on stdout and flushes, then serves until SIGTERM/SIGINT or EOF
on stdin (the test holds the write end, so a test process that dies leaves nothing behind).
Pings are answered and text messages echoed.

With --client-ca FILE, clients must present a certificate signed by a CA in FILE (mutual TLS).

Two server engines, because they fail a TLS handshake differently and both exist in the wild:
  asyncio   (default) Debian's python3-websockets on asyncio. When the handshake fails on the
            server side (e.g. no client certificate), asyncio closes the TCP connection without
            sending the TLS alert: the client sees only EOF.
  threaded  a blocking socket per connection, with a minimal RFC 6455 server (handshake, pong,
            text echo, close) written here. A failed handshake sends its TLS alert, as most TLS
            servers do (TLS 1.3: "certificate required" when no client certificate came), and
            lingers until the client closes, so that the alert is not lost to a TCP reset.

Each SNI name seen is reported once on stderr as "SNI <name>" ("SNI -" for none). With
--require-sni NAME, handshakes with another SNI (or none, unless NAME is "-") are refused with the
unrecognized_name alert, so a test can check what name the client sent.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import socket
import ssl
import struct
import sys
import threading

import websockets

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def log(text):
    print(text, file=sys.stderr, flush=True)


def tls_context(args):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=args.client_ca)
    seen = set()

    def on_sni(_ssl_object, server_name, _context):
        name = server_name or "-"
        if name not in seen:  # once per name: a client in a reconnect loop would flood the log
            seen.add(name)
            log(f"SNI {name}")
        if args.require_sni is not None and name != args.require_sni:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        return None

    context.sni_callback = on_sni
    return context


# ----- asyncio engine: python3-websockets -----

async def handle(websocket):
    try:
        async for message in websocket:
            if isinstance(message, str):
                await websocket.send(message)
    except websockets.ConnectionClosed:
        pass


async def serve_asyncio(args, context):
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
    async with websockets.serve(handle, args.host, 0, ssl=context, ping_interval=None,
                                close_timeout=1.0) as server:
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"PORT {port}\n")
        sys.stdout.flush()
        await stop


# ----- threaded engine: blocking TLS and a minimal RFC 6455 server -----

def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def send_frame(sock, opcode, payload):
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    sock.sendall(header + payload)


def serve_websocket(sock):
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        if not chunk:
            return
        request += chunk
    key = b""
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
    sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        first, second = recv_exact(sock, 2)
        opcode, length = first & 0x0F, second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", recv_exact(sock, 2))
        elif length == 127:
            (length,) = struct.unpack("!Q", recv_exact(sock, 8))
        mask = recv_exact(sock, 4) if second & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(sock, length)))
        if opcode == 0x9:  # ping
            send_frame(sock, 0xA, payload)
        elif opcode == 0x1:  # text
            send_frame(sock, 0x1, payload)
        elif opcode == 0x8:  # close
            send_frame(sock, 0x8, payload[:2])
            return


def handle_threaded(raw, context):
    # wrap_socket takes over raw's descriptor and closes it when the handshake fails; this
    # duplicate keeps the connection open for linger().
    spare = raw.dup()
    try:
        # A blocking handshake writes its alert to the socket before raising.
        with context.wrap_socket(raw, server_side=True) as tls:
            serve_websocket(tls)
    except ssl.SSLError as error:
        log(f"TLS handshake failed: {error}")
        linger(spare)
    except (OSError, ConnectionError) as error:
        log(f"connection ended: {error}")
    finally:
        spare.close()
        raw.close()


def linger(sock):
    """Closes gracefully after a failed handshake: a close with unread data in the socket (the
    client's request, sent right after its side of a TLS 1.3 handshake) makes the kernel send a
    reset, which can destroy the alert before the client reads it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(4096):
            pass
    except OSError:
        pass


def serve_threaded(args, context):
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def watch_stdin():
        while os.read(sys.stdin.fileno(), 4096):
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    with socket.create_server((args.host, 0)) as listener:
        listener.settimeout(0.1)
        sys.stdout.write(f"PORT {listener.getsockname()[1]}\n")
        sys.stdout.flush()
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except socket.timeout:
                continue
            raw.settimeout(10)
            threading.Thread(target=handle_threaded, args=(raw, context), daemon=True).start()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cert", required=True, help="PEM certificate (chain) of the server")
    parser.add_argument("--key", required=True, help="PEM private key of the server")
    parser.add_argument("--client-ca", help="require client certificates signed by this CA")
    parser.add_argument("--require-sni", metavar="NAME",
                        help='refuse handshakes whose SNI is not NAME ("-": no SNI) with the '
                             'unrecognized_name alert')
    parser.add_argument("--engine", choices=("asyncio", "threaded"), default="asyncio")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args(sys.argv[1:])
    if arguments.engine == "threaded":
        serve_threaded(arguments, tls_context(arguments))
    else:
        asyncio.run(serve_asyncio(arguments, tls_context(arguments)))
    sys.exit(0)
