"""The REST API without a cloud: the app over offline regions, auth, the task database.

The offline scenario ``checksum_conflicts`` gives regions with every kind of status; the
app runs in-process (FastAPI's TestClient) and its tasks run the real engine on the CSVs.
Keystone is replaced by a dict of tokens: its real validation is in the live tests.
"""

from __future__ import annotations

import csv
import logging
import shutil
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from glancesync import lock
from glancesync.api import main as api_main
from glancesync.api import tasks
from glancesync.api.app import create_app
from glancesync.api.auth import AuthError, TokenCache, TokenInfo, authorize, parse_token
from glancesync.api.db import FAILED, SYNCED, SYNCING, TaskStore, make_engine, this_owner
from glancesync.api.service import Options, Service, build_service
from glancesync.api.tasks import HEARTBEAT_STALE, TaskLogHandler, outcome, owner_is_dead
from glancesync.exceptions import ConfigError
from glancesync.executor import RegionResult

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "checksum_conflicts"
ADMIN, MEMBER = "admin-token", "member-token"


def info(name: str, roles: set[str], expires: datetime | None = None) -> TokenInfo:
    return TokenInfo(f"{name}-id", name, "p-id", "proj", frozenset(roles), expires)


TOKENS = {ADMIN: info("alice", {"admin", "member"}), MEMBER: info("bob", {"member"})}


@pytest.fixture
def offline(tmp_path: Path) -> Path:
    regions = tmp_path / "regions"
    shutil.copytree(SCENARIO / "before", regions)
    return regions


@pytest.fixture
def make_client(tmp_path: Path, offline: Path, caplog: pytest.LogCaptureFixture):
    """A TestClient over the scenario's regions; tokens checked against TOKENS."""
    caplog.set_level(logging.INFO, logger="glancesync")  # as the server sets it
    clients: list[TestClient] = []

    def make(database: str | None = None, role: str = "admin") -> TestClient:
        options = Options(
            config_file=str(SCENARIO / "glancesync.conf"),
            offline=str(offline),
            database=database or f"sqlite:///{tmp_path / 'state' / 'api.db'}",
            role=role,
            auth="noauth",
        )
        service = build_service(options)
        service.tokens = TokenCache(TOKENS.get)
        client = TestClient(create_app(options, service))
        client.__enter__()  # runs the lifespan: schema, pool
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def as_admin(token: str = ADMIN) -> dict[str, str]:
    return {"X-Auth-Token": token}


def wait_task(client: TestClient, region: str, task_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        doc = client.get(f"/regions/{region}/tasks/{task_id}", headers=as_admin()).json()
        if doc["status"] != SYNCING or time.monotonic() > deadline:
            return doc
        time.sleep(0.05)


# -- the HTTP API -----------------------------------------------------------------------------


def test_version_document_needs_no_token(make_client) -> None:
    doc = make_client().get("/").json()
    assert doc["id"] == "v1.0" and doc["status"] == "SUPPORTED" and doc["version"] == "1.0"
    assert datetime.fromisoformat(doc["runningfrom"].replace("Z", "+00:00")) <= datetime.now(
        timezone.utc
    )


def test_openapi_document_lists_every_endpoint(make_client) -> None:
    paths = make_client().get("/openapi.json").json()["paths"]
    assert set(paths["/regions/{region}"]) == {"get", "post"}
    assert set(paths["/regions/{region}/tasks/{task_id}"]) == {"get", "delete"}


def test_statuses_are_those_of_show_status(make_client) -> None:
    client = make_client()
    expected: dict[str, list[tuple[str, str]]] = {}
    with open(SCENARIO / "status_before.csv", newline="") as f:
        for status, region, name in csv.reader(f):
            expected.setdefault(region, []).append((name, status))
    for region, rows in expected.items():
        got = client.get(f"/regions/{region}", headers=as_admin())
        assert got.status_code == 200, got.text
        assert [(i["name"], i["status"]) for i in got.json()["images"]] == rows


def test_image_filter_and_region_ids(make_client) -> None:
    client = make_client()
    images = client.get("/regions/Burgos?image=cirros", headers=as_admin()).json()["images"]
    assert [(i["name"], i["status"]) for i in images] == [("cirros", "ok")]
    assert images[0]["id"]  # present in Burgos: its id there
    absent = client.get("/regions/other:Madrid?image=cirros", headers=as_admin()).json()
    assert absent["images"][0]["id"] is None
    assert client.get("/regions/Burgos?image=nothing", headers=as_admin()).json() == {"images": []}


@pytest.mark.parametrize(
    ("method", "path", "headers", "code", "message"),
    [
        ("GET", "/regions/Burgos", {}, 401, "authentication required"),
        ("GET", "/regions/Burgos", {"X-Auth-Token": "forged"}, 401, "invalid or expired"),
        ("POST", "/regions/Burgos", {"X-Auth-Token": MEMBER}, 403, "lacks the role 'admin'"),
        ("GET", "/regions/Nowhere", {"X-Auth-Token": ADMIN}, 410, "Bad region"),
        ("POST", "/regions/nothere:Burgos", {"X-Auth-Token": ADMIN}, 410, "Bad region"),
        ("GET", "/regions/other:", {"X-Auth-Token": ADMIN}, 410, "Bad region"),
        ("PUT", "/regions/Burgos", {"X-Auth-Token": ADMIN}, 405, "Bad method"),
        ("POST", "/", {}, 405, "Bad method"),
        ("GET", "/regions/Burgos/tasks/nope", {"X-Auth-Token": ADMIN}, 404, "Item not found"),
        ("GET", "/nowhere", {}, 404, "Item not found"),
    ],
)
def test_errors_are_json(make_client, method, path, headers, code, message) -> None:
    resp = make_client().request(method, path, headers=headers)
    assert resp.status_code == code, resp.text
    body = resp.json()
    assert body["error"]["code"] == code and message in body["error"]["message"], body
    if code == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Keystone")


def test_required_role_is_configurable(make_client) -> None:
    client = make_client(role="member")
    assert client.get("/regions/Burgos", headers=as_admin(MEMBER)).status_code == 200


def test_task_runs_the_engine_and_is_kept_until_deleted(make_client, offline: Path) -> None:
    client = make_client()
    task_id = client.post("/regions/other:Madrid", headers=as_admin()).json()["taskId"]
    doc = wait_task(client, "other:Madrid", task_id)
    assert doc["status"] == SYNCED, doc
    assert doc["region"] == "other:Madrid" and doc["requester"].startswith("alice")
    assert doc["result"]["uploaded"] == 4 and doc["result"]["failures"] == []
    assert doc["ended"] and doc["message"] is None
    assert any("Uploading image cirros" in line for line in doc["log"]), doc["log"]
    statuses = client.get("/regions/other:Madrid", headers=as_admin()).json()["images"]
    assert {i["status"] for i in statuses} <= {"ok", "ok_stalled_checksum"}
    # another region's path does not reach it
    other = client.get(f"/regions/Burgos/tasks/{task_id}", headers=as_admin())
    assert other.status_code == 404
    assert client.delete(f"/regions/other:Madrid/tasks/{task_id}", headers=as_admin()).text == ""
    gone = client.get(f"/regions/other:Madrid/tasks/{task_id}", headers=as_admin())
    assert gone.status_code == 404


def test_a_region_with_a_conflict_ends_with_its_exit_status(make_client) -> None:
    """Burgos has error_checksum (needs the operator) but nothing fails: synced."""
    client = make_client()
    task_id = client.post("/regions/Burgos", headers=as_admin()).json()["taskId"]
    doc = wait_task(client, "Burgos", task_id)
    assert doc["status"] == SYNCED, doc
    assert doc["result"]["needs_operator"] == ["legacy_app (error_checksum)"]


def test_second_post_while_syncing_returns_the_same_task(make_client, tmp_path: Path) -> None:
    client = make_client()
    service: Service = client.app.state.service  # type: ignore[attr-defined]
    gate = threading.Event()
    real = service.pool.make_runner

    def slow_runner():
        gate.wait(10)  # the task stays syncing until the test lets it go
        return real()

    service.pool.make_runner = slow_runner
    first = client.post("/regions/other:Madrid", headers=as_admin()).json()["taskId"]
    second = client.post("/regions/other:Madrid", headers=as_admin()).json()["taskId"]
    elsewhere = client.post("/regions/third:Lisboa", headers=as_admin()).json()["taskId"]
    assert first == second != elsewhere
    conflict = client.delete(f"/regions/other:Madrid/tasks/{first}", headers=as_admin())
    assert conflict.status_code == 409
    gate.set()
    assert wait_task(client, "other:Madrid", first)["status"] == SYNCED
    third = client.post("/regions/other:Madrid", headers=as_admin()).json()["taskId"]
    assert third != first


def test_tasks_survive_a_restart_and_dead_ones_are_failed(make_client, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    store = TaskStore(make_engine(database))
    store.create_schema()
    dead, _ = store.start_task("other:Madrid", "someone")  # as if its server died (us)
    done, _ = store.start_task("Burgos", "someone")
    store.finish_task(done, SYNCED, {"uploaded": 1}, None)
    client = make_client(database=database)
    doc = client.get(f"/regions/other:Madrid/tasks/{dead}", headers=as_admin()).json()
    assert doc["status"] == FAILED and "interrupted" in doc["message"]
    kept = client.get(f"/regions/Burgos/tasks/{done}", headers=as_admin()).json()
    assert kept["status"] == SYNCED and kept["result"] == {"uploaded": 1}
    # the region is free again
    new = client.post("/regions/other:Madrid", headers=as_admin()).json()["taskId"]
    assert new != dead


def test_the_master_region_named_by_target(make_client) -> None:
    """``master:Burgos`` and ``Burgos`` name one region, and so one task."""
    client = make_client()
    task_id = client.post("/regions/master:Burgos", headers=as_admin()).json()["taskId"]
    assert wait_task(client, "Burgos", task_id)["status"] == SYNCED


# -- authentication -----------------------------------------------------------------------


KEYSTONE_TOKEN = {
    "token": {
        "user": {"id": "u1", "name": "alice"},
        "project": {"id": "p1", "name": "ops"},
        "roles": [{"id": "r1", "name": "Admin"}, {"id": "r2", "name": "member"}],
        "expires_at": "2030-01-01T00:00:00.000000Z",
    }
}


def test_parse_token_reads_user_project_roles_expiry() -> None:
    parsed = parse_token(KEYSTONE_TOKEN)
    assert parsed.requester == "alice (u1) project ops"
    assert parsed.roles == {"admin", "member"}
    assert parsed.expires_at == datetime(2030, 1, 1, tzinfo=timezone.utc)
    authorize(parsed, "ADMIN")
    with pytest.raises(AuthError) as caught:
        authorize(parsed, "operator")
    assert caught.value.code == 403


def test_token_cache_asks_keystone_once_per_ttl() -> None:
    calls: list[str] = []
    now = [1000.0]

    def lookup(token: str) -> TokenInfo | None:
        calls.append(token)
        return TOKENS.get(token)

    cache = TokenCache(lookup, ttl=60, clock=lambda: now[0])
    for _ in range(3):
        assert cache.validate(ADMIN).user_name == "alice"
        with pytest.raises(AuthError):
            cache.validate("forged")
    assert calls == [ADMIN, "forged"]
    now[0] += 61
    cache.validate(ADMIN)
    assert calls == [ADMIN, "forged", ADMIN]


def test_token_cache_never_outlives_the_token() -> None:
    soon = datetime.now(timezone.utc) + timedelta(seconds=0.2)
    cache = TokenCache(lambda token: info("carol", {"admin"}, soon), ttl=600)
    assert cache.validate("t").user_name == "carol"
    time.sleep(0.3)
    with pytest.raises(AuthError, match="expired") as caught:
        cache.validate("t")
    assert caught.value.code == 401


def test_missing_token_is_401_without_asking_keystone() -> None:
    cache = TokenCache(lambda token: pytest.fail("Keystone asked"))
    for token in (None, ""):
        with pytest.raises(AuthError) as caught:
            cache.validate(token)
        assert caught.value.code == 401


# -- tasks and their database ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    s = TaskStore(make_engine(f"sqlite:///{tmp_path / 'sub' / 'tasks.db'}"))
    s.create_schema()
    yield s
    s.engine.dispose()


def test_one_syncing_task_per_region(store: TaskStore) -> None:
    first, created = store.start_task("RegionA", "alice")
    again, created_again = store.start_task("RegionA", "bob")
    other, _ = store.start_task("RegionB", "bob")
    assert created and not created_again and first == again != other
    store.finish_task(first, FAILED, None, "boom")
    newer, created = store.start_task("RegionA", "bob")
    assert created and newer != first
    assert store.get_task(first).message == "boom"


def test_log_lines_in_order_and_deleted_with_the_task(store: TaskStore) -> None:
    task_id, _ = store.start_task("RegionA", "alice")
    store.add_log(task_id, 0, ["one", "two"])
    store.add_log(task_id, 2, ["three"])
    assert store.get_task(task_id).log == ["one", "two", "three"]
    store.delete_task(task_id)
    assert store.get_task(task_id) is None
    again, _ = store.start_task("RegionA", "alice")
    assert store.get_task(again).log == []


def test_task_log_handler_keeps_only_its_threads_lines(
    store: TaskStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="glancesync")
    task_id, _ = store.start_task("RegionA", "alice")
    engine_log = logging.getLogger("glancesync")
    handler = TaskLogHandler(store, task_id, threading.get_ident())
    engine_log.addHandler(handler)
    try:
        engine_log.warning("mine")
        other = threading.Thread(target=engine_log.warning, args=("another task's",))
        other.start()
        other.join()
        engine_log.info("mine too")
    finally:
        engine_log.removeHandler(handler)
    handler.flush()
    lines = store.get_task(task_id).log
    assert [line.split(" ", 2)[1:] for line in lines] == [
        ["WARNING", "mine"],
        ["INFO", "mine too"],
    ]


def test_dead_owner() -> None:
    me = this_owner()
    host = me.rpartition(" ")[0]
    assert owner_is_dead(me, 0, me)  # we just started: nothing of ours runs yet
    assert owner_is_dead(f"{host} 999999999", 0, me)  # no such process
    assert not owner_is_dead(f"{host} 1", 0, "other 2")  # alive, beating
    assert owner_is_dead(f"{host} 1", HEARTBEAT_STALE + 1, "other 2")  # alive, silent
    assert not owner_is_dead("elsewhere 1", 5, me)  # another host, beating
    assert owner_is_dead("elsewhere 1", HEARTBEAT_STALE + 1, me)


def test_outcome_of_a_region() -> None:
    assert outcome(RegionResult("A")) == (SYNCED, None)
    assert outcome(RegionResult("A", failed=True, error="no Glance")) == (FAILED, "no Glance")
    failures = [f"img{i}: failed" for i in range(5)]
    status, message = outcome(RegionResult("A", failed=True, failures=failures))
    assert status == FAILED and message.startswith("5 image(s) failed: img0: failed;")


# -- the command -------------------------------------------------------------------------------


def test_without_the_extras_one_line_with_the_pip_command(monkeypatch, capsys) -> None:
    real = api_main.importlib.util.find_spec
    monkeypatch.setattr(
        api_main.importlib.util,
        "find_spec",
        lambda name: None if name == "fastapi" else real(name),
    )
    assert api_main.main(["--offline", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'glancesync[api]'" in err and "fastapi" in err


@pytest.mark.parametrize(
    ("url", "wanted"),
    [
        ("not a url", "not an SQLAlchemy URL"),
        ("nosuchdb://x/y", "nosuchdb"),
    ],
)
def test_bad_database_url_is_a_config_error(url: str, wanted: str) -> None:
    with pytest.raises(ConfigError, match=wanted):
        make_engine(url)


def test_database_password_never_in_messages() -> None:
    with pytest.raises(ConfigError) as caught:
        TaskStore(make_engine("postgresql://u:s3cret@127.0.0.1:1/db")).create_schema()
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


def test_a_task_never_overlaps_a_cli_run(make_client, offline: Path, monkeypatch) -> None:
    """A task takes the configuration's run lock, as a ``glancesync`` run does: it waits
    while a CLI run holds it."""
    monkeypatch.setattr(tasks, "LOCK_POLL_SECONDS", 0.05)
    client = make_client()
    with lock.hold(str(offline / ".glancesync.lock")):  # a CLI run in progress
        task_id = client.post("/regions/other:Madrid", headers=as_admin()).json()["taskId"]
        deadline = time.monotonic() + 30
        while True:
            doc = client.get(f"/regions/other:Madrid/tasks/{task_id}", headers=as_admin())
            if any("waiting: another glancesync run" in line for line in doc.json()["log"]):
                break
            assert time.monotonic() < deadline, doc.json()
            time.sleep(0.05)
        time.sleep(0.2)
        assert (
            client.get(f"/regions/other:Madrid/tasks/{task_id}", headers=as_admin()).json()[
                "status"
            ]
            == SYNCING
        )
    assert wait_task(client, "other:Madrid", task_id)["status"] == SYNCED


@pytest.mark.parametrize("broken", ["Valladolid", "other:Madrid"])
def test_a_region_that_cannot_be_listed_is_502(make_client, offline: Path, broken) -> None:
    """The master (or the region itself) cannot be read: 502 naming it, no traceback."""
    client = make_client()
    (offline / f"backup_{broken}.csv").write_text("not,a,backup\n")
    resp = client.get("/regions/other:Madrid", headers=as_admin())
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == 502 and resp.json()["error"]["message"]
