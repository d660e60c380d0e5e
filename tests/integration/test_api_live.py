"""``glancesync-api`` as a real process on 127.0.0.1, driven over HTTP, against the test bed.

Tokens come from the test bed's Keystone: ``admin`` (role admin) may use the API; the
tenant user (role member only) may not. The server validates tokens with the admin's
credentials (a clouds.yaml entry, ``--auth-cloud``), and syncs with the tenant's (the
glancesync configuration). Every test runs twice: tasks in SQLite (the default) and in a
throwaway PostgreSQL cluster (skipped, loudly, only when PostgreSQL cannot be run here).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from . import testbed as tb
    from .postgres import PostgresCluster, PostgresUnavailable
except ImportError:
    import testbed as tb
    from postgres import PostgresCluster, PostgresUnavailable

MB = 1024 * 1024
BIN = Path(sys.executable).parent


def data(seed: str, size: int) -> bytes:
    block = hashlib.sha512(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def keystone_token(env: dict[str, str]) -> str:
    body = {"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": env["OS_USERNAME"], "domain": {"name": env["OS_USER_DOMAIN_NAME"]},
            "password": env["OS_PASSWORD"]}}},
        "scope": {"project": {"name": env["OS_PROJECT_NAME"],
                              "domain": {"name": env["OS_PROJECT_DOMAIN_NAME"]}}},
    }}  # fmt: skip
    req = urllib.request.Request(
        env["OS_AUTH_URL"].rstrip("/") + "/auth/tokens", json.dumps(body).encode(),
        {"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    with _opener().open(req, timeout=30) as resp:
        return resp.headers["X-Subject-Token"]


class Answer:
    def __init__(self, code: int, body: bytes, headers: Any) -> None:
        self.code = code
        self.body = body
        self.headers = headers

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"HTTP {self.code} {self.body[:500]!r}"


class ApiServer:
    """One ``glancesync-api`` process; stop() sends SIGTERM, kill() SIGKILL."""

    def __init__(self, workdir: Path, config: Path, clouds: Path, database: str) -> None:
        self.workdir = workdir
        self.config = config
        self.clouds = clouds
        self.database = database
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.log = workdir / "api.log"

    def start(self) -> ApiServer:
        self.port = tb.free_ports(1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.clouds)
        cmd = [
            str(BIN / "glancesync-api"), "--config-file", str(self.config),
            "--port", str(self.port), "--database", self.database, "--auth-cloud", "api",
            "--shutdown-timeout", "60",
        ]  # fmt: skip
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"glancesync-api exited {self.proc.returncode}:\n{self.text}")
            with contextlib.suppress(OSError):
                if self.call("GET", "/").code == 200:
                    return self
            if time.monotonic() > deadline:
                raise AssertionError(f"glancesync-api does not answer:\n{self.text}")
            time.sleep(0.2)

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def call(self, method: str, path: str, token: str | None = None) -> Answer:
        req = urllib.request.Request(f"http://{tb.HOST}:{self.port}{path}", method=method)
        if token:
            req.add_header("X-Auth-Token", token)
        try:
            with _opener().open(req, timeout=120) as resp:
                return Answer(resp.status, resp.read(), resp.headers)
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read(), exc.headers)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"glancesync-api ignored SIGTERM:\n{self.text}") from None

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster | None]:
    try:
        cluster = PostgresCluster().start()
    except PostgresUnavailable as exc:
        reason = f"API tests against PostgreSQL SKIPPED: {exc}"
        warnings.warn(reason, stacklevel=1)
        yield None
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def new_database(request, tmp_path_factory):
    """A function giving the URL of a new, empty task database of this run's kind."""
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    if request.param == "postgresql" and postgres is None:
        pytest.skip("PostgreSQL cannot be run here (see the warning above)")

    def make() -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp('state') / 'tasks.db'}"
        return postgres.create_database(f"gs_{uuid.uuid4().hex[:12]}")

    return make


@pytest.fixture(scope="module")
def files(testbed, tmp_path_factory) -> dict[str, Path]:
    """glancesync's configuration (tenant + target users) and the API's clouds.yaml (admin)."""
    workdir = tmp_path_factory.mktemp("api")
    env, tenv, admin = testbed.env, testbed.target_env, testbed.admin_env
    password = base64.b64encode(env["OS_PASSWORD"].encode()).decode()
    config = workdir / "glancesync.conf"
    config.write_text(
        "[main]\nmaster_region = Master\n"
        f"[master]\ncredential = {env['OS_USERNAME']},{password},{env['OS_AUTH_URL']},"
        f"{env['OS_PROJECT_NAME']}\n"
        f"[other]\nuser = {tenv['OS_USERNAME']}\npassword = {tenv['OS_PASSWORD']}\n"
        f"keystone_url = {tenv['OS_AUTH_URL']}\ntenant = {tenv['OS_PROJECT_NAME']}\n"
    )
    clouds = workdir / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"api": {"auth": {
        "auth_url": admin["OS_AUTH_URL"], "username": admin["OS_USERNAME"],
        "password": admin["OS_PASSWORD"], "project_name": admin["OS_PROJECT_NAME"],
        "user_domain_name": "Default", "project_domain_name": "Default",
    }, "region_name": "Master"}}}))  # fmt: skip
    clouds.chmod(0o600)
    return {"workdir": workdir, "config": config, "clouds": clouds}


@pytest.fixture(scope="module")
def tokens(testbed) -> dict[str, str]:
    return {"admin": keystone_token(testbed.admin_env), "member": keystone_token(testbed.env)}


@pytest.fixture(scope="module")
def api(files, new_database) -> Iterator[ApiServer]:
    """The server most tests share (one per database kind)."""
    server = ApiServer(files["workdir"], files["config"], files["clouds"], new_database())
    server.start()
    try:
        yield server
    finally:
        code = server.stop()
        assert code == 0, server.text
        assert "Traceback" not in server.text, server.text


@pytest.fixture
def own_api(files, new_database, tmp_path):
    """A server of the test's own, on a new database: own_api() -> ApiServer (started)."""
    servers: list[ApiServer] = []

    def make(database: str | None = None) -> ApiServer:
        server = ApiServer(tmp_path, files["config"], files["clouds"], database or new_database())
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.kill()


def wait_task(api: ApiServer, token: str, region: str, task_id: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while True:
        answer = api.call("GET", f"/regions/{region}/tasks/{task_id}", token)
        assert answer.code == 200, answer
        doc = answer.json()
        if doc["status"] != "syncing":
            return doc
        assert time.monotonic() < deadline, f"task still syncing: {doc}"
        time.sleep(0.2)


def show_status(config: Path, *regions: str) -> dict[str, list[tuple[str, str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    proc = subprocess.run(
        [str(BIN / "glancesync"), "--config-file", str(config), "--show-status", *regions],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr
    rows: dict[str, list[tuple[str, str]]] = {}
    for status, region, name in csv.reader(io.StringIO(proc.stdout)):
        rows.setdefault(region, []).append((name, status))
    return rows


# -- the tests --------------------------------------------------------------------------------


def test_version_document_and_openapi(api: ApiServer) -> None:
    answer = api.call("GET", "/")
    assert answer.code == 200 and answer.headers["Content-Type"] == "application/json"
    doc = answer.json()
    assert {k: doc[k] for k in ("id", "status", "version")} == {
        "id": "v1.0", "status": "SUPPORTED", "version": "1.0"}  # fmt: skip
    assert doc["runningfrom"] and doc["updated"] and doc["href"] and doc["owner"]
    paths = api.call("GET", "/openapi.json").json()["paths"]
    assert {"/", "/regions/{region}", "/regions/{region}/tasks/{task_id}"} <= set(paths)
    assert 'GET / HTTP/1.1" 200' in api.text  # the access log


def test_tokens_and_roles(api: ApiServer, tokens: dict[str, str]) -> None:
    missing = api.call("GET", "/regions/RegionA")
    forged = api.call("GET", "/regions/RegionA", "gAAAAAforged-token")
    member = api.call("POST", "/regions/RegionA", tokens["member"])
    for answer, code in ((missing, 401), (forged, 401), (member, 403)):
        assert answer.code == code, answer
        assert answer.json()["error"]["code"] == code
    assert "lacks the role 'admin'" in member.json()["error"]["message"]
    assert api.call("GET", "/regions/RegionA", tokens["admin"]).code == 200
    assert "adminpw" not in api.text and tokens["admin"] not in api.text


def test_errors(api: ApiServer, tokens: dict[str, str]) -> None:
    admin = tokens["admin"]
    cases = [
        (api.call("GET", "/regions/Nowhere", admin), 410, "Bad region"),
        (api.call("POST", "/regions/nosuchtarget:RegionA", admin), 410, "Bad region"),
        (api.call("PUT", "/regions/RegionA", admin), 405, "Bad method"),
        (api.call("DELETE", "/regions/RegionA", admin), 405, "Bad method"),
        (api.call("GET", "/regions/RegionA/tasks/0123", admin), 404, "Item not found"),
    ]
    for answer, code, message in cases:
        assert answer.code == code, answer
        assert answer.json() == {"error": {"message": answer.json()["error"]["message"],
                                           "code": code}}  # fmt: skip
        assert message in answer.json()["error"]["message"]


def test_statuses_equal_show_status(api, testbed, files, tokens) -> None:
    same = data("same", 3000)
    testbed.create_image("Master", "same", same, visibility="public")
    testbed.create_image("Master", "conflict", data("new", 2000), visibility="public")
    testbed.create_image("Master", "missing", data("missing", 1000), visibility="public")
    testbed.create_image("Master", "private_tools", b"tools", visibility="private")
    local_same = testbed.create_image("RegionA", "same", same, visibility="public")
    testbed.create_image("RegionA", "conflict", data("old", 2000), visibility="public")

    regions = ["RegionA", "RegionB", "other:RegionC"]
    expected = show_status(files["config"], *regions)
    assert ("conflict", "error_checksum") in expected["RegionA"]  # every kind is there
    for region in regions:
        answer = api.call("GET", f"/regions/{region}", tokens["admin"])
        assert answer.code == 200, answer
        images = answer.json()["images"]
        assert [(i["name"], i["status"]) for i in images] == expected[region]
    one = api.call("GET", "/regions/RegionA?image=same", tokens["admin"]).json()["images"]
    assert one == [{"id": local_same["id"], "name": "same", "status": "ok", "message": None}]


def test_post_syncs_the_region_and_the_task_is_kept_until_deleted(api, testbed, tokens) -> None:
    admin = tokens["admin"]
    contents = {"ubuntu": data("ubuntu", 2 * MB), "cirros": data("cirros", 300 * 1024)}
    for name, content in contents.items():
        testbed.create_image("Master", name, content, visibility="public")

    first = api.call("POST", "/regions/RegionA", admin)
    second = api.call("POST", "/regions/RegionA", admin)  # while the first one runs
    assert first.code == second.code == 200, (first, second)
    task_id = first.json()["taskId"]
    assert second.json() == {"taskId": task_id}

    doc = wait_task(api, admin, "RegionA", task_id)
    assert doc["status"] == "synced", doc
    assert doc["region"] == "RegionA" and doc["requester"].startswith("admin ")
    assert doc["result"]["uploaded"] == 2 and doc["result"]["failures"] == []
    assert doc["ended"] >= doc["started"] and doc["message"] is None
    assert any("RegionA: Uploading image ubuntu" in line for line in doc["log"]), doc["log"]

    region = {i["name"]: i for i in testbed.list_images("RegionA")}
    assert set(region) == set(contents)
    for name, content in contents.items():
        assert region[name]["status"] == "active" and region[name]["visibility"] == "public"
        assert testbed.download("RegionA", region[name]["id"]) == content
    statuses = api.call("GET", "/regions/RegionA", admin).json()["images"]
    assert {(i["name"], i["status"]) for i in statuses} == {("ubuntu", "ok"), ("cirros", "ok")}
    assert testbed.list_images("RegionB") == []  # only the region asked for

    assert api.call("GET", f"/regions/RegionB/tasks/{task_id}", admin).code == 404
    deleted = api.call("DELETE", f"/regions/RegionA/tasks/{task_id}", admin)
    assert deleted.code == 200 and deleted.body == b""
    assert api.call("GET", f"/regions/RegionA/tasks/{task_id}", admin).code == 404
    assert api.call("DELETE", f"/regions/RegionA/tasks/{task_id}", admin).code == 404
    again = api.call("POST", "/regions/RegionA", admin).json()["taskId"]
    assert again != task_id
    assert wait_task(api, admin, "RegionA", again)["result"]["uploaded"] == 0


def test_a_target_region_is_named_target_colon_region(api, testbed, tokens) -> None:
    testbed.create_image("Master", "cirros", data("cirros", 1000), visibility="public")
    task_id = api.call("POST", "/regions/other:RegionC", tokens["admin"]).json()["taskId"]
    doc = wait_task(api, tokens["admin"], "other:RegionC", task_id)
    assert doc["status"] == "synced", doc
    assert [i["name"] for i in testbed.list_images("RegionC", "target")] == ["cirros"]


def test_killed_or_stopped_server_leaves_no_task_syncing_nor_half_copy(
    own_api, testbed, tokens
) -> None:
    """SIGKILL mid-task, restart: the task is failed "interrupted". SIGTERM while the copy
    is made: the engine stops at a safe point, the task says so. Then one good copy."""
    admin = tokens["admin"]
    content = data("huge", 32 * MB)
    testbed.create_image("Master", "huge", content, visibility="public")

    server = own_api()
    killed_id = server.call("POST", "/regions/RegionA", admin).json()["taskId"]
    server.kill()  # SIGKILL: no clean-up, no chance to record anything
    server = own_api(server.database)
    doc = server.call("GET", f"/regions/RegionA/tasks/{killed_id}", admin).json()
    assert doc["status"] == "failed" and "interrupted" in doc["message"], doc
    assert "its server stopped while it ran" in server.text

    # the region is not blocked by the dead task
    task_id = server.call("POST", "/regions/RegionA", admin).json()["taskId"]
    assert task_id != killed_id
    deadline = time.monotonic() + 120
    while not any("Uploading image huge" in line for line in server.call(
            "GET", f"/regions/RegionA/tasks/{task_id}", admin).json()["log"]):  # fmt: skip
        assert time.monotonic() < deadline, server.text
        time.sleep(0.05)
    assert server.stop() == 0, server.text  # SIGTERM while the copy is made
    assert "Traceback" not in server.text, server.text
    assert f"task {task_id}: interrupting RegionA" in server.text

    server = own_api(server.database)
    doc = server.call("GET", f"/regions/RegionA/tasks/{task_id}", admin).json()
    assert doc["status"] == "failed" and "interrupted" in doc["message"], doc
    assert any("interrupted by SIGTERM" in line for line in doc["log"]), doc["log"]
    # nothing half-made under the image's name (at most a marked temporary copy, which
    # the next run deletes); the next run puts one good copy in place
    assert [i for i in testbed.list_images("RegionA") if i["name"] == "huge"] == []
    new_id = server.call("POST", "/regions/RegionA", admin).json()["taskId"]
    assert wait_task(server, admin, "RegionA", new_id)["status"] == "synced"
    [copy] = testbed.list_images("RegionA")
    assert copy["name"] == "huge" and testbed.download("RegionA", copy["id"]) == content
