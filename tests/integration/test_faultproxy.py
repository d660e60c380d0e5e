"""The fault proxy itself, against a small stdlib HTTP server (no test bed needed): each
fault does what test_faults.py relies on, and nothing else is touched."""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator

import pytest

try:
    from .faultproxy import Fault, FaultProxy
except ImportError:
    from faultproxy import Fault, FaultProxy

BODY = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture(autouse=True)
def clean_glance() -> None:
    """Replaces conftest's: these tests need no test bed."""


class Upstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_any(self) -> None:
                if self.headers.get("Transfer-Encoding") == "chunked":
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if not size:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.readline()
                else:
                    body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.bodies.append((self.command, self.path, body))
                answer = b"got %d" % len(body)
                self.send_response(200)
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_PUT = do_POST = do_any  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a connection the proxy cut on purpose


@pytest.fixture
def proxy() -> Iterator[tuple[FaultProxy, Upstream]]:
    upstream = Upstream()
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    with FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}") as p:
        yield p, upstream
    upstream.shutdown()
    upstream.server_close()


def request(p: FaultProxy, method: str, path: str, body: bytes | None = None,
            chunked: bool = False, timeout: float = 10) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=timeout)
    try:
        if chunked:
            conn.request(method, path, body=iter([body[:5000], body[5000:]]),
                         encode_chunked=True)
        else:
            conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("chunked", [False, True])
def test_requests_pass_unchanged_and_are_counted(proxy, chunked):
    p, upstream = proxy
    assert request(p, "PUT", "/v2/images/x/file", BODY, chunked) == (200, b"got 16384")
    assert request(p, "GET", "/v2/images?limit=5") == (200, b"got 0")
    assert upstream.bodies == [
        ("PUT", "/v2/images/x/file", BODY), ("GET", "/v2/images?limit=5", b"")]
    assert p.count("PUT", r"/file$") == 1 and p.count() == 2


def test_a_status_fault_answers_the_nth_match_only(proxy):
    p, upstream = proxy
    fault = p.add(Fault("POST", r"^/v2/images$", "status", status=503, nth=2))
    codes = [request(p, "POST", "/v2/images", b"{}")[0] for _ in range(3)]
    assert codes == [200, 503, 200]
    assert len(upstream.bodies) == 2 and fault.applied == 1


@pytest.mark.parametrize("chunked", [False, True])
def test_flip_changes_exactly_one_byte_of_the_body(proxy, chunked):
    p, upstream = proxy
    p.add(Fault("PUT", r"/file$", "flip", at=7000))
    assert request(p, "PUT", "/v2/images/x/file", BODY, chunked)[0] == 200
    got = upstream.bodies[0][2]
    assert len(got) == len(BODY)
    assert [i for i in range(len(BODY)) if got[i] != BODY[i]] == [7000]


def test_drop_cuts_the_upload_and_the_client_sees_a_broken_connection(proxy):
    p, upstream = proxy
    fault = p.add(Fault("PUT", r"/file$", "drop", at=4096))
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        request(p, "PUT", "/v2/images/x/file", BODY)
    assert fault.reached.is_set()
    assert all(len(body) < len(BODY) for _, _, body in upstream.bodies)


def test_lose_delivers_the_request_but_not_the_answer(proxy):
    p, upstream = proxy
    p.add(Fault("PUT", r"/file$", "lose"))
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        request(p, "PUT", "/v2/images/x/file", BODY)
    assert upstream.bodies == [("PUT", "/v2/images/x/file", BODY)]


def test_a_stalled_request_whose_client_gives_up_is_never_delivered(proxy):
    p, upstream = proxy
    fault = p.add(Fault("GET", r"^/v2/images", "stall", delay=30))
    with pytest.raises(TimeoutError):
        request(p, "GET", "/v2/images", timeout=0.5)
    assert fault.reached.is_set()
    p.reset()  # ends the stall
    assert upstream.bodies == []
    assert request(p, "GET", "/v2/images") == (200, b"got 0")


def test_a_held_answer_comes_once_released(proxy):
    p, upstream = proxy
    fault = p.add(Fault("PUT", r"/file$", "hold", delay=30))
    result: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: result.append(
        request(p, "PUT", "/v2/images/x/file", BODY)))
    client.start()
    assert fault.reached.wait(10)
    assert upstream.bodies == [("PUT", "/v2/images/x/file", BODY)] and result == []
    fault.release()
    client.join(10)
    assert result == [(200, b"got 16384")]
