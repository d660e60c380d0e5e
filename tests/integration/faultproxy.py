"""A loopback HTTP proxy that injects faults between glancesync and one Glance API.

Put in front of one region's Glance (its catalog endpoint points here), it forwards every
request unchanged, except those a :class:`Fault` matches (method + path regex + which
occurrence), which it answers or damages:

* ``status``: answer an HTTP error (5xx) without forwarding anything;
* ``stall``: hold the request (before it is forwarded, or after ``at`` bytes of its body)
  for ``delay`` seconds or until :meth:`Fault.release` (a client that gives up meanwhile
  is noticed: the request is then never delivered, or cut short upstream);
* ``hold``: forward the request, let the server answer, and hold the answer back for
  ``delay`` seconds or until released (a slow answer: the server did the work);
* ``flip``: forward the request with the body byte at offset ``at`` flipped;
* ``drop``: forward the head and ``at`` bytes of the body, then reset both connections;
* ``lose``: forward the whole request, let the server answer, and reset the client's
  connection instead of passing the answer on.

Every request is recorded (method, path, fault applied), so tests can count them.  Glance
behind uWSGI answers ``Connection: close``, so each connection carries one request.
Standard library only, one thread per connection; binds 127.0.0.1 only.
"""

from __future__ import annotations

import re
import select
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

HOST = "127.0.0.1"
ACTIONS = ("status", "stall", "hold", "flip", "drop", "lose")
PIECE = 64 * 1024
IO_TIMEOUT = 300.0  # seconds: a wedged peer does not hold a proxy thread forever


@dataclass
class Fault:
    """What to do to the ``nth`` request (1-based; None: every one) matching method + path."""

    method: str
    path: str  # regular expression, searched in the request target (path and query)
    action: str
    nth: int | None = 1
    status: int = 503
    body: str = "html"  # of a status answer: "html" (as a gateway's) or "json" (flat)
    delay: float = 0.0
    at: int | None = None  # body offset: flip/drop/stall position (stall: None = before)
    seen: int = 0  # matching requests so far
    applied: int = 0  # times the fault was applied
    reached: threading.Event = field(default_factory=threading.Event)  # applied once
    _release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {ACTIONS}")
        if self.action in ("flip", "drop") and self.at is None:
            raise ValueError(f"a {self.action} fault needs a body offset (at=)")

    def matches(self, method: str, target: str) -> bool:
        return method == self.method.upper() and re.search(self.path, target) is not None

    def release(self) -> None:
        """End a stall now (it is over anyway after ``delay`` seconds)."""
        self._release.set()

    def describe(self) -> str:
        which = "every" if self.nth is None else f"#{self.nth}"
        what = {
            "status": f"HTTP {self.status}",
            "stall": f"stall {self.delay:g}s" + (f" after {self.at} B" if self.at else ""),
            "hold": f"hold the answer {self.delay:g}s",
            "flip": f"flip byte {self.at}",
            "drop": f"drop after {self.at} B",
            "lose": "lose the answer",
        }[self.action]
        return f"{what} on {which} {self.method} {self.path}"


@dataclass
class Record:
    method: str
    target: str
    fault: str = ""  # the action applied, if any
    status: int | None = None  # the answer the client got, if any
    client_gone: bool = False  # the client went away while the request was held


class _ClientGone(Exception):
    pass


class _Conn:
    """A socket with a read buffer: lines, exact reads, and waiting that notices EOF."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()

    def _fill(self) -> None:
        data = self.sock.recv(PIECE)
        if not data:
            raise _ClientGone()
        self.buf += data

    def read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[: i + len(sep)])
                del self.buf[: i + len(sep)]
                return out
            if len(self.buf) > limit:
                raise ValueError("header too long")
            self._fill()

    def read_some(self, n: int) -> bytes:
        if not self.buf:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def wait(self, seconds: float, released: threading.Event, closing: threading.Event) -> bool:
        """Wait, buffering what the peer sends; False as soon as the peer goes away."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not released.is_set() and not closing.is_set():
            readable, _, _ = select.select([self.sock], [], [], 0.05)
            if readable:
                try:
                    self._fill()
                except (_ClientGone, OSError):
                    return False
        return True


def _reset(sock: socket.socket | None) -> None:
    """Close with RST, as a crashed peer or a dropped link would."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class FaultProxy:
    """``with FaultProxy(upstream_url) as proxy: proxy.url ...; proxy.add(Fault(...))``."""

    def __init__(self, upstream: str) -> None:
        host_port = upstream.split("://", 1)[-1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        self.upstream = (host, int(port))
        self.faults: list[Fault] = []
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((HOST, 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://{HOST}:{self.port}"
        self._thread: threading.Thread | None = None

    # -- control -------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.1})
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()  # ends every stall
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def reset(self) -> None:
        """No faults, no records (between tests); stalls in progress end now."""
        with self._lock:
            for fault in self.faults:
                fault.release()
            self.faults = []
            self.records = []

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen whose method is ``method`` and target matches regex ``path``."""
        with self._lock:
            return sum(1 for r in self.records
                       if (method is None or r.method == method.upper())
                       and (path is None or re.search(path, r.target)))

    # -- one connection ------------------------------------------------------------------
    def _pick(self, method: str, target: str) -> tuple[Fault | None, Record]:
        with self._lock:
            chosen = None
            for fault in self.faults:
                if fault.matches(method, target):
                    fault.seen += 1
                    if chosen is None and (fault.nth is None or fault.seen == fault.nth):
                        chosen = fault
            record = Record(method, target, chosen.action if chosen else "")
            self.records.append(record)
            if chosen is not None:
                chosen.applied += 1
        return chosen, record

    def _handle(self, client_sock: socket.socket) -> None:
        client_sock.settimeout(IO_TIMEOUT)
        client = _Conn(client_sock)
        upstream: socket.socket | None = None
        try:
            head = client.read_until(b"\r\n\r\n")
            request_line, _, header_block = head.decode("latin-1").partition("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = {}
            for line in header_block.split("\r\n"):
                name, sep, value = line.partition(":")
                if sep:
                    headers[name.strip().lower()] = value.strip()
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length = int(headers.get("content-length") or 0)
            fault, record = self._pick(method, target)
            body = self._body(client, chunked, length)

            if fault is not None and fault.action == "status":
                for _ in body:  # read the request as a server would, then answer
                    pass
                fault.reached.set()
                self._answer(client_sock, fault.status, fault.body, record)
                return
            if fault is not None and fault.action == "stall" and fault.at is None:
                fault.reached.set()
                if not client.wait(fault.delay, fault._release, self._closing):
                    record.client_gone = True
                    return  # never delivered
            upstream = socket.create_connection(self.upstream, timeout=IO_TIMEOUT)
            upstream.sendall(head)
            if not self._forward_body(body, chunked, upstream, client, fault, record):
                return
            if fault is not None and fault.action == "lose":
                record.status = _status_of(_read_all(upstream))
                fault.reached.set()
                _reset(client_sock)
                return
            if fault is not None and fault.action == "hold":
                answer = _read_all(upstream)
                record.status = _status_of(answer)
                fault.reached.set()
                if not client.wait(fault.delay, fault._release, self._closing):
                    record.client_gone = True
                    return
                client_sock.sendall(answer)
                return
            self._relay_answer(upstream, client_sock, record)
        except (_ClientGone, OSError, ValueError):
            pass  # the client or the server went away, or sent garbage: nothing to answer
        finally:
            if upstream is not None:
                upstream.close()
            client_sock.close()

    @staticmethod
    def _body(client: _Conn, chunked: bool, length: int) -> Iterator[bytes]:
        """The request body's data, de-chunked, in pieces as they arrive."""
        if chunked:
            while True:
                size = int(client.read_until(b"\r\n").split(b";")[0].strip(), 16)
                if size == 0:
                    while client.read_until(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return
                yield client.read_exact(size)
                client.read_exact(2)
        left = length
        while left > 0:
            piece = client.read_some(min(PIECE, left))
            left -= len(piece)
            yield piece

    def _forward_body(self, body: Iterator[bytes], chunked: bool, upstream: socket.socket,
                      client: _Conn, fault: Fault | None, record: Record) -> bool:
        """Send the body on (damaged as the fault says); False when the request is over."""
        offset = 0
        positional = fault is not None and fault.at is not None and fault.action in (
            "flip", "drop", "stall")
        for piece in body:
            if positional:
                assert fault is not None and fault.at is not None
                if offset <= fault.at < offset + len(piece):
                    cut = fault.at - offset
                    before, after = piece[:cut], piece[cut:]
                    if fault.action == "flip":
                        after = bytes([after[0] ^ 0x01]) + after[1:]
                        fault.reached.set()
                    _send(upstream, before, chunked)
                    offset += len(before)
                    if fault.action == "drop":
                        fault.reached.set()
                        _reset(upstream)
                        _reset(client.sock)
                        return False
                    if fault.action == "stall":
                        fault.reached.set()
                        if not client.wait(fault.delay, fault._release, self._closing):
                            record.client_gone = True
                            _reset(upstream)  # the server sees the upload cut short
                            return False
                    piece = after
                    positional = False
            _send(upstream, piece, chunked)
            offset += len(piece)
        if chunked:
            upstream.sendall(b"0\r\n\r\n")
        return True

    def _relay_answer(self, upstream: socket.socket, client_sock: socket.socket,
                      record: Record) -> None:
        first = True
        while True:
            data = upstream.recv(PIECE)
            if not data:
                return
            if first:
                record.status = _status_of(data)
                first = False
            client_sock.sendall(data)

    @staticmethod
    def _answer(client_sock: socket.socket, status: int, kind: str, record: Record) -> None:
        if kind == "json":  # flat, as some gateways answer (not Glance's nested shape)
            ctype = b"application/json"
            body = b'{"message": "fault injected", "code": %d}' % status
        else:
            ctype = b"text/html"
            body = b"<html><body><h1>%d Injected Fault</h1>fault injected</body></html>" % status
        client_sock.sendall(
            b"HTTP/1.1 %d Injected Fault\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, ctype, len(body), body))
        record.status = status


def _send(sock: socket.socket, data: bytes, chunked: bool) -> None:
    if not data:
        return
    if chunked:
        sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
    else:
        sock.sendall(data)


def _read_all(sock: socket.socket) -> bytes:
    out = bytearray()
    while True:
        data = sock.recv(PIECE)
        if not data:
            return bytes(out)
        out += data


def _status_of(data: bytes) -> int | None:
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None
