"""Injected faults on the real test bed: the cases, how one is run, and what it left.

Shared by ``test_faults.py`` (which asserts) and ``bench/fault_table.py`` (which prints
what each fault left in each Glance).  A :class:`FaultBed` puts a :class:`FaultProxy` in
front of RegionA's Glance: RegionA's *internal* catalog endpoint points at the proxy and
glancesync's master target uses ``interface = internal``, so only glancesync goes
through it; the checks here read every region directly.  Master holds the images
``alpha`` and ``beta``; RegionA, RegionB (same cloud) and RegionC (the other cloud) are
synced by each run.

A case runs glancesync once with its fault (sending a signal, or killing RegionA's Glance,
when the fault is reached), polls RegionA meanwhile for a wrong active image, records
what every Glance holds, then reruns glancesync with no fault and asks for the status.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from glanceclient import Client as GlanceClient
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

try:
    from .faultproxy import Fault, FaultProxy
except ImportError:
    from faultproxy import Fault, FaultProxy

KB = 1024
PROXIED = "RegionA"
MARKER = "glancesync_run"  # the property glancesync marks its temporary copies with
TEMP_INFIX = ".glancesync-tmp-"
RUN_TIMEOUT = 240  # seconds for one glancesync run (a loaded machine is slow)

# Request targets of Glance's API, as glancesync sends them
LIST = r"^/v2/images(\?|$)"
CREATE = r"^/v2/images$"
UPLOAD = r"^/v2/images/[^/?]+/file$"
IMAGE = r"^/v2/images/[^/?]+$"  # PATCH, DELETE, GET of one image


def content(seed: str, size: int) -> bytes:
    block = hashlib.sha512(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


MASTER_IMAGES = {"alpha": content("alpha", 192 * KB), "beta": content("beta", 64 * KB)}
OLD_ALPHA = content("alpha, an older version", 100 * KB)  # RegionA's copy in replace/rename
MID = 32 * KB  # a body offset inside every upload (beta is 64 KiB)


@dataclass
class Case:
    """One injected fault and what glancesync must do about it."""

    name: str
    what: str  # one line for the table
    faults: Callable[[dict[str, str]], list[Fault]]  # ids of RegionA's images -> faults
    exit_code: int  # documented exit code of the faulty run
    setup: str = ""  # "replace" / "rename": RegionA holds an older alpha, so configured
    signal: int | None = None  # sent to glancesync once the first fault is reached
    kill_glance: bool = False  # RegionA's Glance killed once the first fault is reached
    log: str = ""  # text the faulty run's output must contain
    leftover: bool = False  # a marked leftover stays after the faulty run
    interrupted: bool = False  # the run stops: later regions may be left as they were
    region_fails: bool = False  # RegionA fails as a whole (no listing, no Glance)
    suite: bool = True  # run by test_faults.py too (else only by bench/fault_table.py)


def _one(*faults: Fault) -> Callable[[dict[str, str]], list[Fault]]:
    return lambda ids: list(faults)


def _stall_upload() -> Fault:
    return Fault("PUT", UPLOAD, "stall", at=MID, delay=120)


CASES = [
    Case("create-500", "HTTP 500 on the first image create", _one(
        Fault("POST", CREATE, "status", status=500)), 1, log="500"),
    Case("create-503-once", "HTTP 503 once on create (retried)", _one(
        Fault("POST", CREATE, "status", status=503)), 0, suite=False),
    Case("create-lost-answer", "create done, its answer lost (retried)", _one(
        Fault("POST", CREATE, "lose")), 0, suite=False),
    Case("upload-500", "HTTP 500 on the first upload", _one(
        Fault("PUT", UPLOAD, "status", status=500)), 1, log="500"),
    Case("upload-503-once", "HTTP 503 once on upload (retried from source)", _one(
        Fault("PUT", UPLOAD, "status", status=503)), 0, log="retry", suite=False),
    Case("patch-500", "HTTP 500 on the first metadata update (swap)", _one(
        Fault("PATCH", IMAGE, "status", status=500)), 1, log="500"),
    Case("delete-500", "HTTP 500 deleting the replaced copy", lambda ids: [
        Fault("DELETE", f"^/v2/images/{ids['alpha']}$", "status", status=500)], 1,
        setup="replace", log="500"),
    Case("delete-lost-answer", "replaced copy deleted, answer lost", lambda ids: [
        Fault("DELETE", f"^/v2/images/{ids['alpha']}$", "lose")], 0, setup="replace"),
    Case("list-500", "HTTP 500 on the listing", _one(
        Fault("GET", LIST, "status", status=500)), 1, log="500", region_fails=True, suite=False),
    Case("list-502-json", "HTTP 502 with a gateway's flat JSON body on every listing", _one(
        Fault("GET", LIST, "status", status=502, body="json", nth=None)), 1,
        log="502 Injected Fault", region_fails=True),
    Case("list-stall", "listing stalled 60 s (list_images_timeout 3 s)", _one(
        Fault("GET", LIST, "stall", nth=None, delay=60)), 1, log="Timeout", region_fails=True),
    Case("upload-flipped-byte", "one byte flipped in the upload", _one(
        Fault("PUT", UPLOAD, "flip", at=MID + 5)), 1, log="content"),
    Case("upload-dropped", "connection dropped mid-upload (retried)", _one(
        Fault("PUT", UPLOAD, "drop", at=MID)), 0, log="retry"),
    Case("sigterm-mid-create", "SIGTERM while the create's answer is held (record made)",
         _one(Fault("POST", CREATE, "hold", delay=120)), 143,
         signal=signal.SIGTERM, interrupted=True, suite=False),
    Case("sigterm-mid-upload", "SIGTERM during an upload", _one(_stall_upload()), 143,
         signal=signal.SIGTERM, interrupted=True),
    Case("sigint-mid-upload", "SIGINT during an upload", _one(_stall_upload()), 130,
         signal=signal.SIGINT, interrupted=True),
    Case("sigterm-mid-rename", "SIGTERM while the old copy is renamed .old (done)",
         lambda ids: [Fault("PATCH", f"^/v2/images/{ids['alpha']}$", "hold", delay=120)],
         143, setup="rename", signal=signal.SIGTERM, interrupted=True),
    Case("sigint-mid-replace", "SIGINT while the replaced copy is deleted (not done)",
         lambda ids: [Fault("DELETE", f"^/v2/images/{ids['alpha']}$", "stall", delay=120)],
         130, setup="replace", signal=signal.SIGINT, interrupted=True),
    Case("glance-killed-mid-upload", "RegionA's glance-api killed mid-upload, restarted",
         _one(_stall_upload()), 1, kill_glance=True, leftover=True, region_fails=True),
]


@dataclass
class Row:
    """What one region held: one image."""

    name: str
    status: str
    visibility: str
    hidden: bool
    marked: bool
    checksum: str | None

    def text(self, known: dict[str | None, str]) -> str:
        flags = [self.status, self.visibility]
        if self.hidden:
            flags.append("hidden")
        if self.marked:
            flags.append("marked")
        which = known.get(self.checksum, "other bytes" if self.checksum else "no bytes")
        return f"{self.name} ({', '.join(flags)}; {which})"


@dataclass
class Outcome:
    case: Case
    before: dict[str, list[Row]]
    after: dict[str, list[Row]]  # after the faulty run
    final: dict[str, list[Row]]  # after the rerun
    master_before: list[dict]
    master_after: list[dict]
    run: subprocess.CompletedProcess
    rerun: subprocess.CompletedProcess
    status: subprocess.CompletedProcess
    wrong_active: list[str]  # seen by the poller while the faulty run went on
    wrong_in_db: list[str]  # rows of RegionA's database: ever activated with wrong bytes
    caught_in_db: list[str]  # marked hidden private temporary copies with wrong bytes
    faults: list[Fault] = field(default_factory=list)
    polls: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # per phase


class FaultBed:
    """A fault proxy in front of RegionA and the helpers to run cases; close() undoes it."""

    def __init__(self, bed: Any, workdir: Path) -> None:
        self.bed = bed  # conftest.TestBedFixture
        self.workdir = workdir
        self.proxy = FaultProxy(bed.glance_url(PROXIED)).start()
        self._old_url = bed.bed.set_endpoint(PROXIED, self.proxy.url, "internal")
        self.master_ids: dict[str, str] = {}
        self.checksums = {hashlib.md5(d).hexdigest(): n for n, d in MASTER_IMAGES.items()}
        self.checksums[hashlib.md5(OLD_ALPHA).hexdigest()] = "old alpha"

    def close(self) -> None:
        try:
            self.bed.bed.set_endpoint(PROXIED, self._old_url, "internal")
        finally:
            self.proxy.close()

    # -- the world -------------------------------------------------------------------------
    def ensure_master(self) -> None:
        """Master holds exactly alpha and beta (public), made once and never changed."""
        have = {i["name"]: i for i in self.bed.list_images("Master")}
        for name, data in MASTER_IMAGES.items():
            image = have.get(name)
            if image is None or image["checksum"] != hashlib.md5(data).hexdigest():
                image = self.bed.create_image("Master", name, data, visibility="public")
            self.master_ids[name] = image["id"]

    def clean_targets(self) -> None:
        """No image in RegionA, RegionB, RegionC (as admin, whoever owns them)."""
        for admin, regions in (("admin", [r for r in self.bed.regions if r != "Master"]),
                               ("target-admin", self.bed.target_regions)):
            for region in regions:
                g = self.bed.glance(region, admin)
                for image in self.bed._all_images(g):
                    if image.get("protected"):
                        g.images.update(image["id"], protected=False)
                    self.bed._delete(g, image["id"])

    def regions(self) -> list[tuple[str, str]]:
        return [(r, "master") for r in self.bed.regions] + [
            (r, "target") for r in self.bed.target_regions]

    def rows(self) -> dict[str, list[Row]]:
        out = {}
        for region, cloud in self.regions():
            if region == "Master":
                continue
            out[region] = sorted(
                (_row(i) for i in self.bed.list_images(region, cloud)),
                key=lambda r: (r.name, r.status))
        return out

    def master_listing(self) -> list[dict]:
        images = []
        for image in self.bed.list_images("Master"):
            image.pop("updated_at", None)
            images.append(image)
        return sorted(images, key=lambda i: i["id"])

    # -- running glancesync ------------------------------------------------------------------
    def config(self, setup: str) -> Path:
        env, tenv = self.bed.env, self.bed.target_env
        password = base64.b64encode(env["OS_PASSWORD"].encode()).decode()
        lines = [
            "[main]", "master_region = Master",
            "[DEFAULT]",
            # short timeouts and one retry: a fault costs seconds, not minutes
            "list_images_timeout = 3", "transfer_timeout = 20", "retries = 1",
            "[master]",
            f"credential = {env['OS_USERNAME']},{password},{env['OS_AUTH_URL']},"
            f"{env['OS_PROJECT_NAME']}",
            "interface = internal",  # RegionA's internal endpoint is the fault proxy
        ]
        if setup:
            lines.append(f"{setup} = {hashlib.md5(OLD_ALPHA).hexdigest()}")
        lines += [
            "[other]",
            f"user = {tenv['OS_USERNAME']}", f"password = {tenv['OS_PASSWORD']}",
            f"keystone_url = {tenv['OS_AUTH_URL']}", f"tenant = {tenv['OS_PROJECT_NAME']}",
        ]
        path = self.workdir / f"glancesync-{setup or 'plain'}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def command(self, config: Path, *args: str) -> tuple[list[str], dict[str, str]]:
        script = Path(sys.executable).with_name("glancesync")
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "glancesync.cli"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
        env["GLANCESYNC_LOCK_FILE"] = str(self.workdir / "lock")
        return cmd + ["--config-file", str(config), *args], env

    def glancesync(self, config: Path, *args: str) -> subprocess.CompletedProcess:
        cmd, env = self.command(config, *args, "master:", "other:")
        return subprocess.run(cmd, cwd=self.workdir, env=env, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT)

    def run_case(self, case: Case) -> Outcome:
        seconds: dict[str, float] = {}
        t0 = time.monotonic()

        def lap(phase: str) -> None:
            nonlocal t0
            seconds[phase] = round(time.monotonic() - t0, 1)
            t0 = time.monotonic()

        self.proxy.reset()
        self.clean_targets()
        ids: dict[str, str] = {}
        if case.setup:
            old = self.bed.create_image(PROXIED, "alpha", OLD_ALPHA, visibility="public")
            ids["alpha"] = old["id"]
        config = self.config(case.setup)
        before = self.rows()
        master_before = self.master_listing()
        allowed = set(self.checksums)  # bytes of master images and of RegionA's old copy
        faults = [self.proxy.add(f) for f in case.faults(ids)]
        earlier = self._database_ids()  # rows of earlier cases are not this one's
        lap("setup")

        poller = _Poller(self.bed, allowed)
        poller.start()
        cmd, env = self.command(config, "master:", "other:")
        proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            if case.signal is not None or case.kill_glance:
                if not faults[0].reached.wait(RUN_TIMEOUT):
                    raise AssertionError(f"{case.name}: the fault was never reached")
                if case.kill_glance:
                    self.bed.bed.kill_glance(PROXIED)
                    faults[0].release()  # the proxy finds the server gone
                else:
                    assert case.signal is not None
                    proc.send_signal(case.signal)
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        finally:
            poller.stop()
            self.proxy.reset()  # no fault is left for the rerun
            if case.kill_glance:
                self.bed.bed.start_glance(PROXIED)
        run = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
        lap("faulty run")
        after = self.rows()
        master_after = self.master_listing()
        wrong_in_db, caught_in_db = self.wrong_in_database(allowed, earlier)
        lap("look")
        rerun = self.glancesync(config)
        lap("rerun")
        status = self.glancesync(config, "--show-status")
        lap("status")
        final = self.rows()
        lap("look again")
        return Outcome(case, before, after, final, master_before, master_after, run,
                       rerun, status, poller.wrong, wrong_in_db, caught_in_db, faults,
                       poller.polls, seconds)

    def _database(self) -> sqlite3.Connection:
        db = Path(self.bed.base) / "glance" / PROXIED / "glance.db"
        return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)

    def _database_ids(self) -> set[str]:
        with contextlib.closing(self._database()) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM images")}

    def wrong_in_database(self, allowed: set[str], earlier: set[str]
                          ) -> tuple[list[str], list[str]]:
        """Images of RegionA's Glance that were ever active with bytes not in ``allowed``
        (deleted ones included: Glance keeps their rows, and sets the checksum only on
        activation): those a user could have taken for a synced image, and the marked,
        hidden, private temporary copies (caught by the verification)."""
        with contextlib.closing(self._database()) as conn:
            rows = conn.execute(
                "SELECT id, name, status, checksum, visibility, os_hidden FROM images "
                "WHERE checksum IS NOT NULL").fetchall()
            marked = {r[0] for r in conn.execute(
                "SELECT image_id FROM image_properties WHERE name = ?", (MARKER,))}
        wrong, caught = [], []
        for image_id, name, status, checksum, visibility, hidden in rows:
            if checksum in allowed or image_id in earlier:
                continue
            temporary = image_id in marked and hidden and visibility == "private"
            (caught if temporary else wrong).append(
                f"{name} {image_id} ({status}, {visibility}) md5 {checksum}")
        return wrong, caught


def _row(image: dict) -> Row:
    return Row(image["name"], image["status"], image["visibility"],
               bool(image.get("os_hidden")), MARKER in image, image.get("checksum"))


class _Poller(threading.Thread):
    """Lists RegionA (directly) every ~0.2 s: any image a user could take for a synced
    one (not a marked hidden private temporary copy) that is active with wrong bytes."""

    def __init__(self, bed: Any, allowed: set[str]) -> None:
        super().__init__(daemon=True)
        env = bed.env
        auth = v3.Password(
            auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"],
            password=env["OS_PASSWORD"], project_name=env["OS_PROJECT_NAME"],
            user_domain_name=env["OS_USER_DOMAIN_NAME"],
            project_domain_name=env["OS_PROJECT_DOMAIN_NAME"])
        # its own session and client: the test's own are not used from two threads
        self._glance = GlanceClient("2", session=ksa_session.Session(auth=auth, timeout=5),
                                    region_name=PROXIED, interface="public")
        self.allowed = allowed
        self.wrong: list[str] = []
        self.polls = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.2):
            try:
                images = [dict(i) for f in ({}, {"os_hidden": True})
                          for i in self._glance.images.list(filters=f)]
            except Exception:  # Glance down (killed) or slow: the next poll will tell
                continue
            self.polls += 1
            for image in images:
                temporary = (MARKER in image and image.get("os_hidden")
                             and image.get("visibility") == "private")
                if (image.get("status") == "active" and not temporary
                        and image.get("checksum") not in self.allowed):
                    self.wrong.append(f"{image['name']} {image['id']} {image['checksum']}")

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)


def faultbed_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="glancesync-faults-"))
