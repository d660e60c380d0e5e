"""What the OpenStack facade says when a Glance (or a gateway in front of it) answers
badly: the HTTP status and the body of any shape, and a connection reset in the middle
of an upload named as such. A tiny loopback HTTP server plays the Glance API."""

from __future__ import annotations

import hashlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from keystoneauth1 import session as ksa_session
from keystoneauth1 import token_endpoint

from glancesync.config import Credentials
from glancesync.exceptions import FacadeError
from glancesync.facade.openstack import OpenStackFacade
from glancesync.image import Image
from glancesync.transfer import ImageSource

Handler = Callable[[BaseHTTPRequestHandler], None]


class FakeGlance:
    """Answers each (method, path prefix) with a handler; records nothing else."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        fake = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _dispatch(self) -> None:
                for (method, prefix), handler in fake.routes.items():
                    if method == self.command and self.path.startswith(prefix):
                        handler(self)
                        return
                answer(self, 404, "application/json", b'{"message": "no route"}')

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def answer(handler: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes) -> None:
    length = int(handler.headers.get("Content-Length") or 0)
    if length:
        handler.rfile.read(length)
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)
    handler.close_connection = True


def reset(handler: BaseHTTPRequestHandler) -> None:
    """Read a little of the request body, then drop the connection with a TCP RST."""
    handler.rfile.read1(65536)
    handler.connection.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    handler.connection.close()
    handler.close_connection = True


@pytest.fixture
def glance() -> Iterator[FakeGlance]:
    fake = FakeGlance()
    yield fake
    fake.close()


@pytest.fixture
def facade(glance: FakeGlance) -> Iterator[OpenStackFacade]:
    creds = Credentials(auth_url="http://127.0.0.1:9/v3", username="u", password="p",
                        project_name="p")
    facade = OpenStackFacade("master", creds, timeout=10, retries=0, transfer_timeout=10)
    # A fixed endpoint instead of a Keystone: every region is the fake Glance.
    facade._session = ksa_session.Session(
        auth=token_endpoint.Token(glance.url, "token"), timeout=10
    )
    yield facade


BODIES = [
    ("application/json", b'"the gateway is busy"', "the gateway is busy"),
    ("application/json", b'["busy", "try later"]', "busy"),
    ("application/json", b'{"error": "plain string"}', "plain string"),
    ("application/json", b'{"error": {"message": "nested", "code": 500}}', "nested"),
    ("application/json", b'{"message": "flat"}', "flat"),
    ("application/json", b"not json at all", "not json at all"),
    ("application/json", b"42", "42"),
    ("text/html", b"<html><body><h1>500 Oops</h1>gateway</body></html>", "500 Oops"),
    ("text/plain", b"plain text\n\nmore", "plain text more"),
    ("text/plain", b"", "500"),
]


@pytest.mark.parametrize(("ctype", "body", "shown"), BODIES)
def test_an_error_body_of_any_shape_gives_the_status_and_the_body(facade, glance, ctype,
                                                                 body, shown):
    glance.routes[("GET", "/v2/images")] = lambda h: answer(h, 500, ctype, body)
    with pytest.raises(FacadeError) as err:
        facade.list_images("RegionOne")
    message = str(err.value)
    assert "500" in message
    assert shown in message
    assert "object has no attribute" not in message
    assert "\n" not in message


def test_a_long_error_body_is_cut(facade, glance):
    body = json.dumps({"message": "x" * 100000}).encode()
    glance.routes[("GET", "/v2/images")] = lambda h: answer(h, 500, "application/json", body)
    with pytest.raises(FacadeError) as err:
        facade.list_images("RegionOne")
    assert len(str(err.value)) < 1000


def _image(data: bytes) -> Image:
    return Image(
        id="m1", name="img", region="Master", owner="o", size=len(data),
        checksum=hashlib.md5(data).hexdigest(), status="active", visibility="public",
        os_hash_algo="sha512", os_hash_value=hashlib.sha512(data).hexdigest(),
        disk_format="raw", container_format="bare",
    )


def test_a_connection_reset_during_an_upload_is_named_so(facade, glance):
    data = b"x" * (8 * 1024 * 1024)
    created: dict[str, bool] = {}

    def create(h: BaseHTTPRequestHandler) -> None:
        created["yes"] = True
        answer(h, 201, "application/json", b"{}")

    glance.routes[("POST", "/v2/images")] = create
    glance.routes[("PUT", "/v2/images/")] = reset
    glance.routes[("DELETE", "/v2/images/")] = lambda h: answer(h, 204, "text/plain", b"")
    chunks = [data[i : i + 2**20] for i in range(0, len(data), 2**20)]
    source = ImageSource(_image(data), "test bytes", lambda: iter(chunks), progress=False)
    with pytest.raises(FacadeError) as err:
        facade.upload_image("RegionOne", _image(data), source)
    message = str(err.value)
    assert created
    assert "connection reset during upload" in message
    assert "finding address" not in message
    assert "Unable to establish connection" not in message
    assert err.value.transient
