"""The programs that run in the demo's pods and outside hosts (standard library only).

``app``        an HTTP server; for every request it makes its configured calls in order
               (HTTP to another Service, Redis INCR, a PostgreSQL query, a TLS request),
               each time resolving host names through the pod's real resolver.
``tls-server`` a TLS server answering one HTTP request per connection (the external API).
``client``     the outside client: a bounded number of HTTP requests, one connection each.

``record_demo.py`` starts these inside network namespaces; they are not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import socket
import socketserver
import ssl
import struct
import sys
import time

TIMEOUT = 5.0


def log(*parts: object) -> None:
    print(time.strftime("%H:%M:%S"), *parts, file=sys.stderr, flush=True)


# --- clients for the calls an app makes ------------------------------------------------------

def call_http(host: str, port: int, path: str) -> str:
    # http.client → socket.create_connection → getaddrinfo: the pod's resolver does the lookup.
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"User-Agent": "shop-frontend/1.4.2"})
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"http {host}:{port} answered {resp.status}")
        return body.decode(errors="replace")[:200]
    finally:
        conn.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed early")
        buf += chunk
    return buf


def _recv_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("connection closed early")
        buf += chunk
    return buf


def call_redis(host: str, port: int) -> str:
    """RESP: INCR a counter, then QUIT."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        key = b"shop:requests"
        s.sendall(b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n" % (len(key), key))
        reply = _recv_line(s)
        if not reply.startswith(b":"):
            raise RuntimeError(f"redis answered {reply!r}")
        s.sendall(b"*1\r\n$4\r\nQUIT\r\n")
        _recv_line(s)
        return f"hits={int(reply[1:])}"


def call_postgres(host: str, port: int, user: str = "shop", database: str = "postgres") -> str:
    """The PostgreSQL v3 wire protocol: startup (trust auth), one simple query, terminate."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as s:
        params = b"".join(k + b"\0" + v + b"\0" for k, v in (
            (b"user", user.encode()), (b"database", database.encode()),
            (b"application_name", b"shop-api"))) + b"\0"
        s.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
        row = ""
        sent_query = False
        while True:
            kind = _recv_exact(s, 1)
            (length,) = struct.unpack("!I", _recv_exact(s, 4))
            body = _recv_exact(s, length - 4)
            if kind == b"E":
                raise RuntimeError(f"postgres error: {body!r}")
            if kind == b"R" and struct.unpack("!I", body[:4])[0] != 0:
                raise RuntimeError("postgres asked for a password; expected trust")
            if kind == b"D":
                (ncols,) = struct.unpack("!H", body[:2])
                (vlen,) = struct.unpack("!i", body[2:6])
                row = body[6:6 + vlen].decode() if ncols and vlen >= 0 else ""
            if kind == b"Z":
                if sent_query:
                    break
                q = b"SELECT count(*) FROM pg_stat_activity\0"
                s.sendall(b"Q" + struct.pack("!I", 4 + len(q)) + q)
                sent_query = True
        s.sendall(b"X" + struct.pack("!I", 4))
        return f"sessions={row}"


def call_tls(host: str, port: int, ca: str, server_name: str) -> str:
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as s:
            s.sendall(f"GET /v1/rates HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            status = data.split(b"\r\n", 1)[0].decode(errors="replace")
            if " 200 " not in status:
                raise RuntimeError(f"tls {host}:{port} answered {status!r}")
            return "payments=ok"


# --- servers -----------------------------------------------------------------------------------

def parse_call(text: str) -> tuple[str, str, int]:
    parts = text.split(":")
    proto, host, port = parts[0], ":".join(parts[1:-1]), int(parts[-1])
    return proto, host, port


def run_app(args: argparse.Namespace) -> None:
    calls = [parse_call(c) for c in args.call]

    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = f"{args.name}/1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            results = []
            try:
                for proto, host, port in calls:
                    if proto == "http":
                        results.append(call_http(host, port, "/api/catalog"))
                    elif proto == "redis":
                        results.append(call_redis(host, port))
                    elif proto == "postgres":
                        results.append(call_postgres(host, port))
                    elif proto == "tls":
                        results.append(call_tls(host, port, args.ca, args.tls_name))
                    else:
                        raise RuntimeError(f"unknown call protocol {proto}")
                status, body = 200, json.dumps({"service": args.name, "upstream": results})
            except Exception as e:  # the recorder checks every reply; say what failed
                log("call failed:", repr(e))
                status, body = 502, json.dumps({"service": args.name, "error": repr(e)})
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *a: object) -> None:  # noqa: A002
            log(self.address_string(), format % a)

    host, port = args.listen.rsplit(":", 1)
    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def server_bind(self) -> None:
            # HTTPServer.server_bind does a reverse DNS lookup of the bind address; an app
            # server would not, and it would put stray PTR queries in the capture.
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = host, int(port)

    server = Server((host, int(port)), Handler)
    log(f"{args.name} listening on {args.listen}, calls {args.call}")
    server.serve_forever()


def run_tls_server(args: argparse.Namespace) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    host, port = args.listen.rsplit(":", 1)
    with socket.create_server((host, int(port)), backlog=16) as srv:
        log(f"tls server listening on {args.listen}")
        while True:
            raw, addr = srv.accept()
            raw.settimeout(TIMEOUT)
            try:
                with ctx.wrap_socket(raw, server_side=True) as s:
                    req = b""
                    while b"\r\n\r\n" not in req:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        req += chunk
                    body = b'{"EUR":1.0,"USD":1.08}'
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                log(addr[0], "served", req.split(b"\r\n", 1)[0].decode(errors="replace"))
            except (OSError, ssl.SSLError) as e:
                log(addr[0], "failed:", repr(e))


def run_client(args: argparse.Namespace) -> None:
    """Bounded: ``--count`` requests, each with a timeout; prints one JSON line of results."""
    proto, host, port = parse_call(args.call)
    statuses = []
    for i in range(args.count):
        try:
            conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
            conn.request("GET", f"/?request={i}", headers={"User-Agent": "curl/7.88.1"})
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
            conn.close()
        except OSError as e:
            log("request", i, "failed:", repr(e))
            statuses.append(0)
        time.sleep(args.interval)
    print(json.dumps({"statuses": statuses}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="program", required=True)
    a = sub.add_parser("app")
    a.add_argument("--name", required=True)
    a.add_argument("--listen", required=True)
    a.add_argument("--call", action="append", default=[], help="proto:host:port, in order")
    a.add_argument("--ca", default="")
    a.add_argument("--tls-name", default="")
    t = sub.add_parser("tls-server")
    t.add_argument("--listen", required=True)
    t.add_argument("--cert", required=True)
    t.add_argument("--key", required=True)
    c = sub.add_parser("client")
    c.add_argument("--call", required=True)
    c.add_argument("--count", type=int, required=True)
    c.add_argument("--interval", type=float, default=0.2)
    args = p.parse_args(argv)
    {"app": run_app, "tls-server": run_tls_server, "client": run_client}[args.program](args)


if __name__ == "__main__":
    main()
