"""A real Keystone + Glance cloud on 127.0.0.1 for glancesync's integration tests.

Two clouds, started from scratch in a fresh temporary directory on free ports:

* Keystone 1 (identity region ``Master``) with the tenant ``tenant``/``tenantpw`` (member of
  project ``tenant1``) and image endpoints for ``Master``, ``RegionA`` and ``RegionB``, each
  served by its own Glance API;
* Keystone 2, a separate "target" cloud with ``target``/``targetpw`` (project ``target1``) and
  one Glance API for ``RegionC``.

The servers (keystone 30.0.0 / glance 33.0.0 under uWSGI, or gunicorn) pin ~130 packages,
so they live in their own virtualenv, ``$GLANCESYNC_TESTBED_VENV`` (default
``<repo>/.testbed/venv``), installed on first use (~1 min; uWSGI compiles: gcc and the
Python headers are needed, and installed with apt-get when missing and we are root) and
reused while the pinned list is unchanged.  Nothing but the standard library is imported
here, so any Python 3.10+ can drive it.

Library::

    with TestBed() as bed:
        bed.env            # OS_* for the tenant on Keystone 1 (OS_REGION_NAME=Master)
        bed.target_env     # OS_* for the target user on Keystone 2 (RegionC)
        bed.glance_url("RegionA")

Command line (for developers)::

    eval "$(.venv/bin/python tests/integration/testbed.py up)"  # leaves it running
    .venv/bin/pytest tests/integration   # GLANCESYNC_TESTBED_BASE is set: reuses the bed
    .venv/bin/python tests/integration/testbed.py down --purge "$GLANCESYNC_TESTBED_BASE"
    .venv/bin/python tests/integration/testbed.py venv  # only install the server venv

Environment: GLANCESYNC_TESTBED_VENV (server venv), GLANCESYNC_TESTBED_SERVER
(``uwsgi``, default, or ``gunicorn``), GLANCESYNC_TESTBED_PYTHON (interpreter that creates
the venv; default: the base interpreter of the running one), GLANCESYNC_TESTBED_TIMEOUT
(seconds for the servers to answer, default 120), GLANCESYNC_TESTBED_KEEP=1 (keep the base
directory with configs, databases and logs after stop).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

# Keystone 30.0.0 / Glance 33.0.0 and everything they import, pinned: a set that was seen to
# install and work together.  Changing it (or the server) reinstalls the venv on next use.
REQUIREMENTS = """
alembic==1.20.1 amqp==5.4.2 aniso8601==10.0.1 attrs==26.1.0 automaton==3.5.0 autopage==0.6.0
bcrypt==5.0.0 blinker==1.9.0 cachetools==8.0.1 castellan==5.8.0 certifi==2026.10.18 cffi==2.1.1
charset-normalizer==3.5.2 click==8.5.1 cliff==4.17.0 cmd2==4.3.1 cotyledon==2.2.0
cryptography==50.0.2 cursive==0.3.1 debtcollector==3.1.0 decorator==5.3.1 defusedxml==0.7.1
dnspython==2.9.2 dogpile.cache==1.5.0 elementpath==4.8.0 eventlet==0.41.3 fasteners==0.20
Flask==3.1.3 Flask-RESTful==0.3.10 futurist==3.5.0 glance==33.0.0 glance_store==5.7.0
greenlet==3.5.6 httplib2==0.32.1 idna==3.20 importlib_metadata==10.2.0 iso8601==2.1.0
itsdangerous==2.2.0 Jinja2==3.1.6 jmespath==1.1.0 jsonpatch==1.47 jsonpointer==3.12
jsonschema==4.26.0 jsonschema-specifications==2025.9.1 keystone==30.0.0 keystoneauth1==5.18.1
keystonemiddleware==13.0.1 kombu==5.7.0 lazy-importer==0.1.0 Mako==1.4.3 markdown-it-py==4.3.0
MarkupSafe==3.0.4 mdurl==0.1.2 msgpack==1.2.4 netaddr==1.3.0 networkx==3.6.1 oauthlib==4.0.1
openstacksdk==4.22.0 os-service-types==1.9.0 oslo.cache==4.3.0 oslo.concurrency==7.6.1
oslo.config==10.7.0 oslo.context==6.5.0 oslo.db==18.1.1 oslo.i18n==6.9.0 oslo.limit==2.12.0
oslo.log==8.3.2 oslo.messaging==18.3.1 oslo.metrics==0.17.0 oslo.middleware==8.2.0
oslo.policy==6.0.1 oslo.reports==3.9.0 oslo.serialization==5.11.0 oslo.service==4.8.0
oslo.upgradecheck==2.8.0 oslo.utils==10.2.0 osprofiler==4.4.0 packaging==26.3 Paste==3.10.1
PasteDeploy==3.1.0 pbr==7.1.3 platformdirs==4.14.7 prettytable==3.18.0 prometheus_client==0.26.0
prompt_toolkit==3.0.53 psutil==7.2.2 pycadf==4.1.0 pycparser==3.12 pydot==4.0.1 Pygments==2.21.0
PyJWT==2.15.1 pyOpenSSL==26.4.0 pyparsing==3.3.3 pyperclip==1.11.0 pysaml2==7.5.5
python-barbicanclient==7.6.0 python-dateutil==4.0.0 python-glanceclient==4.13.0
python-keystoneclient==6.0.0 pytz==2026.6 PyYAML==6.0.3 referencing==0.37.0 repoze-lru==0.8
requests==2.34.2 retrying==1.4.2 rfc3986==2.0.0 rich==15.0.0 rich-argparse==1.8.0 Routes==2.5.1
rpds-py==2026.9.1 setproctitle==1.3.8 simplegeneric==0.8.1 six==1.17.0 SQLAlchemy==2.1.9
statsd==4.0.1 stevedore==5.10.0 taskflow==6.5.0 tenacity==9.2.1 testresources==2.1.2
testscenarios==0.7.0 typing_extensions==4.16.0 tzdata==2026.6 urllib3==2.8.0 vine==5.1.0
warlock==2.1.0 wcwidth==0.9.4 WebOb==1.8.11 Werkzeug==3.1.9 wrapt==2.5.2 WSME==0.13.0
xmlschema==2.5.1 yappi==1.7.6 zipp==4.1.2
""".split()
SERVERS = {"uwsgi": "uWSGI==2.0.31", "gunicorn": "gunicorn==27.0.1"}
INSTALL_RECIPE = "2"  # bump when _install changes in a way existing venvs must see

# credentials of the test bed (loopback only)
ADMIN_PASSWORD = "adminpw"
GLANCE_PASSWORD = "glancepw"
MASTER_REGIONS = ["Master", "RegionA", "RegionB"]
TARGET_REGIONS = ["RegionC"]
# The one region whose Glance can pull an image from another region of its Keystone
# (glancesync's server-side copy); the others only take streamed uploads.
GLANCE_DOWNLOAD_REGION = "RegionB"


@dataclass(frozen=True)
class Cloud:
    """One Keystone with its users and the image regions in its catalog."""

    name: str  # directory and service name: keystone, keystone2
    identity_region: str
    admin_password: str
    user: str
    password: str
    project: str
    regions: list[str]


CLOUDS = [
    Cloud("keystone", "Master", ADMIN_PASSWORD, "tenant", "tenantpw", "tenant1", MASTER_REGIONS),
    Cloud("keystone2", "RegionC", "admin2pw", "target", "targetpw", "target1", TARGET_REGIONS),
]

# Stock glance lets only admin publicize; glancesync's users publish as project members.
POLICY_YAML = (
    "# stock glance: publicize_image = rule:context_is_admin\n"
    '"publicize_image": "rule:context_is_admin or (role:member and project_id:%(project_id)s)"\n'
)

# Proxy settings would send the servers' and our loopback requests elsewhere; PYTHONPATH or a
# VIRTUAL_ENV of the caller must not leak into the servers' interpreter.
_SCRUBBED_ENV = {
    "http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
    "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP",
}


class TestBedError(RuntimeError):
    """The test bed could not be installed or started."""


def _log(msg: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


_LOG_NOISE = (
    "is ignored: it is neither a file nor a directory",  # pip, find-links of this machine
    "uWSGI running as root", "you are running uWSGI as root",
)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path})"
    kept = [line for line in text if not any(noise in line for noise in _LOG_NOISE)]
    return f"--- tail of {path} ---\n" + "\n".join(kept[-lines:])


def _server_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _SCRUBBED_ENV and not k.startswith("OS_")}
    env["PYTHONWARNINGS"] = "ignore"  # eventlet / oslo deprecation noise
    env.update(extra or {})
    return env


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def free_ports(count: int, host: str = HOST) -> list[int]:
    """Ports the kernel says are free now (all held open together, so they are distinct)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------------- the venv


def default_venv() -> Path:
    return Path(os.environ.get("GLANCESYNC_TESTBED_VENV") or REPO_ROOT / ".testbed" / "venv")


def default_server() -> str:
    server = os.environ.get("GLANCESYNC_TESTBED_SERVER") or "uwsgi"
    if server not in SERVERS:
        raise TestBedError(f"GLANCESYNC_TESTBED_SERVER must be one of {sorted(SERVERS)}")
    return server


def _base_python() -> str:
    explicit = os.environ.get("GLANCESYNC_TESTBED_PYTHON")
    if explicit:
        return explicit
    # in a venv, the interpreter it was made from: a venv of a venv works but is fragile
    return getattr(sys, "_base_executable", None) or sys.executable


def _missing_build_tools(python: str, server: str) -> list[str]:
    """What creating the venv and building the server needs and is not there."""
    missing = []
    probe = (
        "import os, sys, sysconfig\n"
        "try:\n    import ensurepip, venv  # noqa\nexcept ImportError:\n    print('venv')\n"
        "inc = sysconfig.get_config_var('INCLUDEPY') or ''\n"
        "if not os.path.exists(os.path.join(inc, 'Python.h')):\n    print('headers')\n"
    )
    try:
        out = subprocess.run([python, "-c", probe], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise TestBedError(f"cannot run the venv interpreter {python!r}: {e}") from e
    found = out.stdout.split()
    if "venv" in found:
        missing.append("venv module (Debian/Ubuntu: python3-venv)")
    if server == "uwsgi":
        if "headers" in found:
            missing.append("Python headers (Debian/Ubuntu: python3-dev)")
        if not (shutil.which("gcc") or shutil.which("cc")):
            missing.append("C compiler (Debian/Ubuntu: gcc)")
    return missing


def ensure_build_tools(python: str, server: str) -> None:
    """Install python3-venv/python3-dev/gcc with apt-get when missing (root only)."""
    missing = _missing_build_tools(python, server)
    if not missing:
        return
    apt = shutil.which("apt-get")
    if os.geteuid() == 0 and apt:
        _log(f"missing {', '.join(missing)}: installing with apt-get")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in ([apt, "update", "-q"],
                    [apt, "install", "-y", "-q",
                     "python3-venv", "python3-dev", "gcc", "libc6-dev"]):
            done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            if done.returncode:
                tail = "\n".join(done.stdout.splitlines()[-20:])
                raise TestBedError(f"{' '.join(cmd)} failed:\n{tail}")
        missing = _missing_build_tools(python, server)
    if missing:
        raise TestBedError(
            f"the test bed needs {', '.join(missing)} for {python}; install them "
            "(scripts/install-system-deps.sh), or set GLANCESYNC_TESTBED_SERVER=gunicorn "
            "(no compiler needed) / GLANCESYNC_TESTBED_PYTHON to an interpreter that has them"
        )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (two sessions must not install the same venv at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class ServerVenv:
    """The servers' virtualenv, installed and with its database templates."""

    path: Path
    server: str
    templates: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def paste_ini(self) -> Path:
        return self.path / "etc" / "glance" / "glance-api-paste.ini"


def ensure_venv(venv: Path | None = None, server: str | None = None) -> ServerVenv:
    """Install the pinned servers into ``venv`` unless its marker says they are there.

    Idempotent and safe to call from concurrent processes.  Also builds, once per venv,
    schema-only keystone/glance sqlite templates that each bring-up copies instead of running
    ``db_sync`` (saves ~6 Python start-ups per bring-up).
    """
    venv = Path(venv or default_venv()).absolute()
    server = server or default_server()
    reqs = REQUIREMENTS + [SERVERS[server]]
    digest = hashlib.sha256("\n".join([*reqs, INSTALL_RECIPE]).encode()).hexdigest()[:16]
    marker = venv / ".glancesync-testbed-reqs"
    sv = ServerVenv(venv, server, venv / f"glancesync-templates-{digest}")
    with _locked(venv.parent / f".{venv.name}.lock"):
        ready = (marker.is_file() and marker.read_text().strip() == digest
                 and (venv / "bin" / server).exists() and sv.paste_ini.exists())
        if not ready:
            _install(venv, server, reqs)
            marker.write_text(digest + "\n")
        _ensure_templates(sv)
    return sv


def _install(venv: Path, server: str, reqs: list[str]) -> None:
    t0 = time.monotonic()
    python = _base_python()
    ensure_build_tools(python, server)
    _log(f"installing the servers into {venv} (keystone 30 / glance 33 / {server}; ~1 min)")
    if not (venv / "bin" / "python").exists():  # missing or dangling (interpreter gone)
        cmd = [python, "-m", "venv", "--clear", str(venv)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise TestBedError(f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}")
    req_file = venv / "glancesync-testbed-requirements.txt"
    req_file.write_text("\n".join(r for r in reqs if r != SERVERS["uwsgi"]) + "\n")
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    steps = [pip + ["-r", str(req_file)]]
    if SERVERS["uwsgi"] in reqs:
        # uWSGI compiles against the venv's Python; pip's wheel cache is keyed only by
        # "cp311", so a wheel built by another Python 3.11 (pyenv vs Debian) would be
        # reused and fail at run time ("No module named '_socket'"): always build it here
        steps.append(pip + ["--no-cache-dir", "--force-reinstall", "--no-deps",
                            SERVERS["uwsgi"]])
    log = venv / "pip-install.log"
    rc = 0
    with open(log, "w") as out:
        for cmd in steps:
            rc = subprocess.call(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_server_environ() | {k: v for k, v in os.environ.items()
                                         if "proxy" in k.lower()})
            if rc:
                break
    if rc:
        raise TestBedError(f"pip install into {venv} failed (exit {rc})\n{_tail(log)}")
    _log(f"server venv ready after {time.monotonic() - t0:.0f}s")


def _ensure_templates(sv: ServerVenv) -> None:
    if (sv.templates / "keystone.db").exists() and (sv.templates / "glance.db").exists():
        return
    work = Path(tempfile.mkdtemp(prefix=".tpl-", dir=sv.path))
    try:
        jobs = []
        for tool, name in (("keystone-manage", "keystone"), ("glance-manage", "glance")):
            conf = work / f"{name}.conf"
            conf.write_text(f"[database]\nconnection = sqlite:///{work / name}.db\n")
            log = open(work / f"{name}.log", "w")  # closed below
            jobs.append((name, log, subprocess.Popen(
                [str(sv.bin / tool), "--config-file", str(conf), "db_sync"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_server_environ())))
        failed = []
        for name, log, proc in jobs:
            if proc.wait():
                failed.append(_tail(work / f"{name}.log"))
            log.close()
        if failed:
            raise TestBedError("db_sync for the database templates failed\n" + "\n".join(failed))
        sv.templates.mkdir(exist_ok=True)
        for name in ("keystone", "glance"):
            os.replace(work / f"{name}.db", sv.templates / f"{name}.db")
        for old in sv.path.glob("glancesync-templates-*"):  # of an earlier requirement list
            if old != sv.templates:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------------------- processes


def _pgroup_members(pgid: int) -> list[int]:
    """Live (not zombie) PIDs whose process group is ``pgid``, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # state ppid pgrp ...
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def stop_groups(pgids: list[int], marker: str | None = None, timeout: float = 15.0,
                procs: list[subprocess.Popen] | None = None) -> None:
    """Stop the process groups ``pgids`` (each led by a server master): TERM, later KILL.

    TERM goes to the leader, which stops its workers (uWSGI die-on-term, gunicorn); to every
    member when the leader is gone.  Whatever is left after ``timeout`` s gets KILL.  With
    ``marker`` only processes whose command line contains it are signalled (PID reuse guard
    for PIDs read from files).  ``procs`` (our own children) are reaped.
    """
    def targets(pgid: int) -> list[int]:
        return [p for p in _pgroup_members(pgid) if marker is None or marker in _cmdline(p)]

    def kill(pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)

    for pgid in pgids:
        members = targets(pgid)
        for pid in [pgid] if pgid in members else members:
            kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while True:
        for p in procs or []:
            p.poll()  # reap our children
        left = [pid for g in pgids for pid in targets(g)]
        if not left:
            break
        if time.monotonic() > deadline:
            for pid in left:
                kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    for p in procs or []:
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=5)


def _http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of GET url, None when nothing answers (never through a proxy)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (OSError, ValueError):
        return None


class _Keystone:
    """Just enough of the Identity v3 API (stdlib only) to fill a fresh catalog."""

    def __init__(self, url: str, password: str) -> None:
        self.url = url.rstrip("/")
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}},
        }}
        _, headers, _ = self.call("POST", "/auth/tokens", body, auth=False)
        self.token = headers["X-Subject-Token"]

    def call(self, method: str, path: str, body: dict | None = None, auth: bool = True,
             ok_codes: tuple[int, ...] = ()) -> tuple[int, dict, dict]:
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        req.add_header("Content-Type", "application/json")
        if auth:
            req.add_header("X-Auth-Token", self.token)
        try:
            with self._opener.open(req, timeout=30) as r:
                raw = r.read()
                return r.status, dict(r.headers), json.loads(raw) if raw else {}
        except urllib.error.HTTPError as e:
            if e.code in ok_codes:
                return e.code, dict(e.headers), {}
            raise TestBedError(f"keystone {method} {path}: HTTP {e.code} {e.read()[:300]!r}") from e

    def create(self, kind: str, **attrs: object) -> str:
        _, _, data = self.call("POST", f"/{kind}s", {kind: attrs})
        return data[kind]["id"]

    def role_ids(self) -> dict[str, str]:
        return {r["name"]: r["id"] for r in self.call("GET", "/roles")[2]["roles"]}

    def grant(self, role: str, user: str, project: str) -> None:
        self.call("PUT", f"/projects/{project}/users/{user}/roles/{role}")


# ------------------------------------------------------------------------------- the bed


@dataclass
class _Service:
    name: str  # keystone, keystone2, glance-Master, ...
    dir: Path
    port: int
    module: str
    env: dict[str, str]
    threads: int
    ready_path: str  # answered (<500, not 404) once the app is loaded
    log_file: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def url(self, path: str = "") -> str:
        return f"http://{HOST}:{self.port}{path}"


class TestBed:
    """Two Keystones and four Glance APIs on free 127.0.0.1 ports; see the module docstring.

    After :meth:`start`: ``env``, ``target_env``, ``admin_env``, ``target_admin_env`` (OS_*
    variable dicts), ``regions``, ``target_regions``, ``base`` and :meth:`glance_url`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, venv: Path | str | None = None, server: str | None = None,
                 start_timeout: float | None = None, glance_threads: int = 1,
                 die_with_parent: bool = True, keep: bool | None = None,
                 log: Callable[[str], None] = _log) -> None:
        self.venv_path = Path(venv) if venv else default_venv()
        self.server = server or default_server()
        self.start_timeout = start_timeout or float(
            os.environ.get("GLANCESYNC_TESTBED_TIMEOUT") or 120)
        # sqlite + several request threads: concurrent writes -> "database is locked" (500)
        self.glance_threads = glance_threads
        # servers get SIGTERM when the thread that started them dies (pytest killed -9 ...)
        self.die_with_parent = die_with_parent
        self.keep = keep if keep is not None else os.environ.get("GLANCESYNC_TESTBED_KEEP") == "1"
        self.log = log
        self.regions = list(MASTER_REGIONS)
        self.target_regions = list(TARGET_REGIONS)
        self.base: Path | None = None
        self.env: dict[str, str] = {}
        self.target_env: dict[str, str] = {}
        self.admin_env: dict[str, str] = {}
        self.target_admin_env: dict[str, str] = {}
        self._services: dict[str, _Service] = {}
        self._helpers: list[subprocess.Popen] = []  # keystone-manage runs
        self._glance_urls: dict[str, str] = {}
        self._launched: dict[str, dict] = {}  # service name -> how it was started
        self._pids: dict[str, int] = {}  # service name -> pid, of an attached bed
        self._restarted: list[subprocess.Popen] = []  # servers restarted in an attached bed
        self._attached = False

    # -- public API ---------------------------------------------------------------------

    def __enter__(self) -> TestBed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def glance_url(self, region: str) -> str:
        try:
            return self._glance_urls[region]
        except KeyError:
            raise KeyError(f"no Glance for region {region!r} (have {sorted(self._glance_urls)})"
                           ) from None

    @property
    def running(self) -> bool:
        return bool(self._services) and all(
            s.proc is not None and s.proc.poll() is None for s in self._services.values())

    def start(self) -> TestBed:
        """Install (if needed), configure and start everything; wait until all answer."""
        if self._services:
            raise TestBedError("already started")
        t0 = time.monotonic()
        sv = ensure_venv(self.venv_path, self.server)
        for attempt in (1, 2):
            self.base = Path(tempfile.mkdtemp(prefix="glancesync-testbed-"))
            atexit.register(self.stop)
            try:
                self._start(sv)
                break
            except TestBedError as e:
                # a port found free was taken before the server bound it (e.g. as the source
                # port of some connection): once, start over on other ports
                if attempt == 1 and "Address already in use" in str(e):
                    self.log("a port was taken meanwhile; starting over on other ports")
                    self.stop()
                    continue
                self._failed(e)
                raise TestBedError(f"{e}\n(configs and logs kept in {self.base})") from e
            except BaseException as e:
                self._failed(e)
                raise
        self.log(f"test bed up in {time.monotonic() - t0:.1f}s: base {self.base}, keystone "
                 f"{self.env['OS_AUTH_URL']}, target {self.target_env['OS_AUTH_URL']}")
        return self

    def _failed(self, e: BaseException) -> None:
        if not isinstance(e, KeyboardInterrupt):
            self.keep = True  # leave configs and logs for a post-mortem
        self.stop()

    def stop(self) -> None:
        """Stop every server this object started (TERM, then KILL); idempotent."""
        atexit.unregister(self.stop)
        if self._attached:
            return
        for helper in self._helpers:
            if helper.poll() is None:
                helper.kill()
                helper.wait()
        self._helpers = []
        procs = [s.proc for s in self._services.values() if s.proc is not None]
        if procs:
            # marker: only processes that still run our configs (PID reuse guard)
            stop_groups([p.pid for p in procs], marker=str(self.base), procs=procs)
            self.log(f"stopped {len(procs)} server(s)")
        self._services = {}
        if self.base is not None and not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)
            if self.base.exists():
                # a server may have been writing while we removed (sqlite journals)
                time.sleep(0.2)
                shutil.rmtree(self.base, ignore_errors=True)

    def glance_written_bytes(self, region: str) -> int:
        """Bytes written so far by the Glance API processes of ``region`` (``wchar`` of
        /proc/PID/io: mostly the image bytes it serves): a counter of its egress."""
        assert self.base is not None
        state = json.loads((self.base / "state.json").read_text())
        total = 0
        for pid in _pgroup_members(state["pids"][f"glance-{region}"]):
            try:
                text = Path(f"/proc/{pid}/io").read_text()
            except OSError:
                continue  # ended meanwhile
            for line in text.splitlines():
                if line.startswith("wchar:"):
                    total += int(line.split()[1])
        return total

    @classmethod
    def attach(cls, base: Path | str) -> TestBed:
        """A TestBed for servers started earlier by ``testbed.py up``; stop() leaves them."""
        base = Path(base).absolute()
        try:
            state = json.loads((base / "state.json").read_text())
        except (OSError, ValueError) as e:
            raise TestBedError(f"no test bed state in {base}: {e}") from e
        bed = cls(die_with_parent=False, keep=True)
        bed.base = base
        bed._attached = True
        for key in ("env", "target_env", "admin_env", "target_admin_env", "regions",
                    "target_regions"):
            setattr(bed, key, state[key])
        bed._glance_urls = state["glance_urls"]
        bed._launched = state.get("launched", {})
        bed._pids = dict(state["pids"])
        for name, pid in state["pids"].items():
            if not any(base.as_posix() in _cmdline(p) for p in _pgroup_members(pid)):
                raise TestBedError(f"{name} of the test bed in {base} is not running "
                                   "(start a new one, or unset GLANCESYNC_TESTBED_BASE)")
        return bed

    # -- faults -------------------------------------------------------------------------

    def set_endpoint(self, region: str, url: str, interface: str = "internal") -> str:
        """Point ``region``'s image endpoint of ``interface`` at ``url``; returns the old URL.

        Clients of the other interfaces still reach the server directly: a fault proxy put
        in front of one Glance this way is seen only by a client configured for
        ``interface``.
        """
        cloud = next((c for c in CLOUDS if region in c.regions), None)
        if cloud is None:
            raise KeyError(f"no region {region!r} in the test bed")
        env = self.admin_env if cloud is CLOUDS[0] else self.target_admin_env
        ks = _Keystone(env["OS_AUTH_URL"], env["OS_PASSWORD"])
        found = ks.call("GET", f"/endpoints?interface={interface}&region_id={region}")[2]
        endpoints = found["endpoints"]
        if len(endpoints) != 1:
            raise TestBedError(f"{len(endpoints)} {interface} endpoints for {region}")
        ks.call("PATCH", f"/endpoints/{endpoints[0]['id']}", {"endpoint": {"url": url}})
        return endpoints[0]["url"]

    def kill_glance(self, region: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to every process of ``region``'s Glance API (a crash) and reap it."""
        name = f"glance-{region}"
        svc = self._services.get(name)
        pgid = svc.proc.pid if svc is not None and svc.proc is not None else self._pids.get(name)
        if pgid is None:
            raise TestBedError(f"{name} is not running in this test bed")
        marker = str(self.base)
        members = [p for p in _pgroup_members(pgid) if marker in _cmdline(p)]
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        procs = [svc.proc] if svc is not None and svc.proc is not None else []
        procs += [p for p in self._restarted if p.pid == pgid]
        deadline = time.monotonic() + 15
        while any(p in _pgroup_members(pgid) for p in members) and time.monotonic() < deadline:
            for p in procs:
                p.poll()
            time.sleep(0.05)

    def start_glance(self, region: str) -> None:
        """Start ``region``'s Glance API again (after :meth:`kill_glance`), same port and
        data; returns once it answers."""
        name = f"glance-{region}"
        launch = self._launched.get(name)
        if launch is None:
            raise TestBedError(f"do not know how {name} was started (an older test bed?)")
        proc = self._popen(launch)
        svc = self._services.get(name)
        if svc is not None:
            svc.proc = proc
        else:
            self._restarted.append(proc)
            self._pids[name] = proc.pid
        deadline = time.monotonic() + self.start_timeout
        while True:
            if proc.poll() is not None:
                raise TestBedError(f"{name} exited with {proc.returncode} on restart\n"
                                   f"{_tail(Path(launch['dir']) / 'server.log')}")
            code = _http_status(launch["url"])
            if code is not None and code < 500 and code != 404:
                break
            if time.monotonic() > deadline:
                raise TestBedError(f"{name} not answering {self.start_timeout:.0f}s after restart")
            time.sleep(0.2)
        if self.base is not None:
            if svc is not None:
                self._write_pids()
            else:
                _write(self.base / "run" / f"{name}.pid", f"{proc.pid}\n")
            self._write_state()

    def _current_pids(self) -> dict[str, int]:
        if self._services:
            return {s.name: s.proc.pid for s in self._services.values() if s.proc}
        return dict(self._pids)

    # -- bring-up -----------------------------------------------------------------------

    def _start(self, sv: ServerVenv) -> None:
        assert self.base is not None
        t0 = time.monotonic()
        all_regions = [r for c in CLOUDS for r in c.regions]
        ports = free_ports(len(CLOUDS) + len(all_regions))
        ks_urls = {c.name: f"http://{HOST}:{ports[i]}/v3" for i, c in enumerate(CLOUDS)}
        gports = dict(zip(all_regions, ports[len(CLOUDS):], strict=True))
        self._glance_urls = {r: f"http://{HOST}:{p}" for r, p in gports.items()}

        # configs, databases, key repositories: all local files, fast
        for i, cloud in enumerate(CLOUDS):
            self._services[cloud.name] = self._prepare_keystone(sv, cloud, ports[i])
        for cloud in CLOUDS:
            for region in cloud.regions:
                svc = self._prepare_glance(sv, region, gports[region], ks_urls[cloud.name])
                self._services[svc.name] = svc
        # start all servers from this thread (see die_with_parent); they load in parallel
        for svc in self._services.values():
            self._launch(sv, svc)
        self._write_pids()
        self.log(f"started {len(self._services)} servers ({self.server}) in {self.base}")

        # keystone-manage bootstrap while the servers load (the db schema is already there)
        self._parallel("bootstrap", self._bootstrap, [(sv, c, ks_urls[c.name]) for c in CLOUDS])
        self.log(f"keystone bootstrap done after {time.monotonic() - t0:.1f}s")
        self._wait_ready([self._services[c.name] for c in CLOUDS])
        self.log(f"keystones answer after {time.monotonic() - t0:.1f}s")
        self._parallel("catalog", self._fill_catalog, [(c, ks_urls[c.name]) for c in CLOUDS])
        self.log(f"catalogs filled after {time.monotonic() - t0:.1f}s")
        self._wait_ready([s for s in self._services.values() if s.name.startswith("glance-")])

        master, target = CLOUDS
        self.env = self._os_env(ks_urls[master.name], master.user, master.password,
                                master.project, "Master")
        self.target_env = self._os_env(ks_urls[target.name], target.user, target.password,
                                       target.project, "RegionC")
        self.admin_env = self._os_env(ks_urls[master.name], "admin", master.admin_password,
                                      "admin", "Master")
        self.target_admin_env = self._os_env(ks_urls[target.name], "admin",
                                             target.admin_password, "admin", "RegionC")
        self._write_state()

    @staticmethod
    def _os_env(url: str, user: str, password: str, project: str, region: str) -> dict[str, str]:
        return {
            "OS_AUTH_URL": url,
            "OS_IDENTITY_API_VERSION": "3",
            "OS_USERNAME": user,
            "OS_PASSWORD": password,
            "OS_PROJECT_NAME": project,
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": region,
            "OS_INTERFACE": "public",
        }

    def _parallel(self, what: str, fn: Callable, calls: list[tuple]) -> None:
        """fn(*args) for each args in threads; fail fast if a server dies meanwhile."""
        errors: list[BaseException] = []

        def run(*args: object) -> None:
            try:
                fn(*args)
            except BaseException as e:  # re-raised below, in the caller's thread
                errors.append(e)

        threads = [threading.Thread(target=run, args=args, daemon=True) for args in calls]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            self._check_alive()
            for t in threads:
                t.join(timeout=0.2)
        if errors:
            raise TestBedError(f"{what}: {errors[0]}") from errors[0]

    def _check_alive(self) -> None:
        for svc in self._services.values():
            assert svc.proc is not None
            if svc.proc.poll() is not None:
                raise TestBedError(
                    f"{svc.name} exited with {svc.proc.returncode} during start-up\n"
                    f"{_tail(svc.dir / 'server.log')}\n{_tail(svc.log_file)}")

    def _prepare_keystone(self, sv: ServerVenv, cloud: Cloud, port: int) -> _Service:
        assert self.base is not None
        d = self.base / cloud.name
        d.mkdir()
        conf = d / "keystone.conf"
        _write(conf, f"""\
[DEFAULT]
log_file = {d}/keystone.log
[database]
connection = sqlite:///{d}/keystone.db
[token]
provider = fernet
[fernet_tokens]
key_repository = {d}/fernet-keys
[fernet_receipts]
key_repository = {d}/fernet-receipts
[credential]
key_repository = {d}/credential-keys
[identity]
# bcrypt cost 4 instead of 12: a password login costs ~1 ms of CPU instead of ~250 ms
password_hash_rounds = 4
""")
        shutil.copyfile(sv.templates / "keystone.db", d / "keystone.db")
        for repo in ("fernet-keys", "fernet-receipts", "credential-keys"):
            # what "keystone-manage fernet_setup" writes (staged key 0, primary key 1),
            # without two more keystone-manage start-ups
            (d / repo).mkdir(mode=0o700)
            for i in (0, 1):
                _write(d / repo / str(i), base64.urlsafe_b64encode(os.urandom(32)).decode(), 0o600)
        return _Service(cloud.name, d, port, "keystone.wsgi.api:application",
                        {"OS_KEYSTONE_CONFIG_FILES": str(conf)}, 4, "/v3", d / "keystone.log")

    def _bootstrap(self, sv: ServerVenv, cloud: Cloud, url: str) -> None:
        d = self._services[cloud.name].dir
        log = d / "keystone-manage.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(sv.bin / "keystone-manage"), "--config-file", str(d / "keystone.conf"),
                 "bootstrap", "--bootstrap-password", cloud.admin_password,
                 "--bootstrap-region-id", cloud.identity_region,
                 "--bootstrap-public-url", url, "--bootstrap-internal-url", url,
                 "--bootstrap-admin-url", url],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=_server_environ())
            self._helpers.append(proc)  # stop() ends it if start-up fails meanwhile
            rc = proc.wait()
        if rc:
            raise TestBedError(f"keystone-manage bootstrap failed (exit {rc})\n{_tail(log)}")

    def _fill_catalog(self, cloud: Cloud, url: str) -> None:
        """Projects, users, roles and the image endpoints of ``cloud`` (a fresh keystone)."""
        try:
            self._fill_catalog_of(cloud, url)
        except (TestBedError, OSError) as e:
            raise TestBedError(f"{cloud.name}: {e}\n{_tail(self._services[cloud.name].log_file)}"
                               ) from e

    def _fill_catalog_of(self, cloud: Cloud, url: str) -> None:
        ks = _Keystone(url, cloud.admin_password)
        roles = ks.role_ids()
        for role in ("member", "service"):  # "service": token validation under new RBAC
            if role not in roles:
                roles[role] = ks.create("role", name=role)
        service_project = ks.create("project", name="service", domain_id="default")
        project = ks.create("project", name=cloud.project, domain_id="default",
                            description="image owner project")
        glance = ks.create("user", name="glance", password=GLANCE_PASSWORD, domain_id="default",
                           default_project_id=service_project)
        for role in ("admin", "service"):
            ks.grant(roles[role], glance, service_project)
        user = ks.create("user", name=cloud.user, password=cloud.password, domain_id="default",
                         default_project_id=project)
        ks.grant(roles["member"], user, project)
        image = ks.create("service", type="image", name="glance", description="Image")
        for region in cloud.regions:
            if region != cloud.identity_region:  # bootstrap made that one
                ks.call("POST", "/regions", {"region": {"id": region}}, ok_codes=(409,))
            for interface in ("public", "internal", "admin"):
                ks.create("endpoint", service_id=image, region_id=region, interface=interface,
                          url=self._glance_urls[region])

    def _prepare_glance(self, sv: ServerVenv, region: str, port: int, ks_url: str) -> _Service:
        assert self.base is not None
        d = self.base / "glance" / region
        for sub in ("images", "images2", "staging", "tasks", "lock", "cache"):
            (d / sub).mkdir(parents=True)
        _write(d / "policy.yaml", POLICY_YAML)
        methods = "glance-direct,web-download,copy-image"
        if region == GLANCE_DOWNLOAD_REGION:
            # glance-download fetches <master endpoint>/v2/images/<id>/file with the
            # caller's token; the [import_filtering_opts] below let it reach loopback.
            methods += ",glance-download"
        _write(d / "glance-api.conf", f"""\
[DEFAULT]
log_file = {d}/glance-api.log
# two file stores, so that copy-image can be exercised; "fs" is the default
enabled_backends = fs:file, fs2:file
enabled_import_methods = [{methods}]
worker_self_reference_url = http://{HOST}:{port}
image_cache_dir = {d}/cache
[database]
connection = sqlite:///{d}/glance.db
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = {d}/images
[fs2]
filesystem_store_datadir = {d}/images2
[os_glance_staging_store]
filesystem_store_datadir = {d}/staging
[os_glance_tasks_store]
filesystem_store_datadir = {d}/tasks
[import_filtering_opts]
# web-download from loopback: the stock config allows ports 80/443 only and blocks loopback
# hosts unless listed (a literal IP); these ListOpts need [brackets]
allowed_ports = []
allowed_hosts = [{HOST}]
[paste_deploy]
flavor = keystone
config_file = {sv.paste_ini}
[oslo_policy]
policy_file = {d}/policy.yaml
[oslo_concurrency]
lock_path = {d}/lock
[keystone_authtoken]
www_authenticate_uri = {ks_url}
auth_url = {ks_url}
auth_type = password
username = glance
password = {GLANCE_PASSWORD}
project_name = service
user_domain_name = Default
project_domain_name = Default
# the catalog's internal identity endpoint would do too; without either every request fails
interface = public
service_type = image
service_token_roles_required = true
""")
        shutil.copyfile(sv.templates / "glance.db", d / "glance.db")
        return _Service(f"glance-{region}", d, port, "glance.wsgi.api:application",
                        {"OS_GLANCE_CONFIG_DIR": str(d)}, self.glance_threads, "/v2/images",
                        d / "glance-api.log")

    def _launch(self, sv: ServerVenv, svc: _Service) -> None:
        if self.server == "uwsgi":
            cmd = [str(sv.bin / "uwsgi"), "--ini", str(self._uwsgi_ini(sv, svc))]
        else:
            cmd = [str(sv.bin / "gunicorn"), "-c", str(self._gunicorn_conf(svc))]
        setpriv = shutil.which("setpriv")
        if self.die_with_parent and setpriv:
            # setpriv sets PR_SET_PDEATHSIG and execs the server: same PID, kept across exec
            cmd = [setpriv, "--pdeathsig", "TERM", "--", *cmd]
        self._launched[svc.name] = {"cmd": cmd, "dir": str(svc.dir), "env": svc.env,
                                    "url": svc.url(svc.ready_path)}
        svc.proc = self._popen(self._launched[svc.name])

    @staticmethod
    def _popen(launch: dict) -> subprocess.Popen:
        out = open(Path(launch["dir"]) / "server.log", "ab")  # the child has its own copy
        try:
            return subprocess.Popen(launch["cmd"], cwd=launch["dir"], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, env=_server_environ(launch["env"]))
        finally:
            out.close()

    def _uwsgi_ini(self, sv: ServerVenv, svc: _Service) -> Path:
        ini = svc.dir / "uwsgi.ini"
        env_lines = "".join(f"env = {k}={v}\n" for k, v in svc.env.items())
        _write(ini, f"""\
[uwsgi]
# no "home": uwsgi finds the venv from its own path (venv/bin/uwsgi, ../pyvenv.cfg); setting
# it breaks a Debian-built Python (stdlib extension modules are looked up under the venv)
module = {svc.module}
http-socket = {HOST}:{svc.port}
master = true
processes = 1
threads = {svc.threads}
# without it threads made by the app (glance's import task pool) never run
enable-threads = true
single-interpreter = true
lazy-apps = true
need-app = true
die-on-term = true
buffer-size = 65535
# uWSGI 2.0 http-socket does not keep connections alive: tell clients (else requests reuses
# a closed socket -> "Connection reset by peer" on PUT bodies)
add-header = Connection: close
# glanceclient sends 1 MiB chunks (Transfer-Encoding: chunked); the default limit is 1 MB
chunked-input-limit = 16777216
chunked-input-timeout = 120
socket-timeout = 120
disable-logging = true
log-4xx = true
log-5xx = true
env = PYTHONWARNINGS=ignore
{env_lines}""")
        return ini

    def _gunicorn_conf(self, svc: _Service) -> Path:
        app = svc.module
        if svc.module.startswith("keystone."):
            # keystone parses sys.argv with oslo.config: "unrecognized arguments" under gunicorn
            mod = svc.module.split(":")[0]
            _write(svc.dir / "glancesync_wsgi.py",
                   f"import sys\n\nsys.argv = sys.argv[:1]\n"
                   f"from {mod} import application  # noqa\n")
            app = "glancesync_wsgi:application"
        conf = svc.dir / "gunicorn.conf.py"
        raw_env = ["PYTHONWARNINGS=ignore"] + [f"{k}={v}" for k, v in svc.env.items()]
        _write(conf, "".join(f"{k} = {v!r}\n" for k, v in {
            "wsgi_app": app,
            "chdir": str(svc.dir),
            "bind": f"{HOST}:{svc.port}",
            "workers": 1,
            "threads": svc.threads,
            "worker_class": "gthread",
            "timeout": 300,
            "graceful_timeout": 10,
            "proc_name": str(svc.dir),  # process title carries the base dir (see down)
            "control_socket_disable": True,  # else gunicorn 27 writes ~/.gunicorn/
            "errorlog": "-",
            "raw_env": raw_env,
        }.items()))
        return conf

    def _wait_ready(self, services: list[_Service]) -> None:
        todo = list(services)
        deadline = time.monotonic() + self.start_timeout
        while todo:
            self._check_alive()
            for svc in list(todo):
                code = _http_status(svc.url(svc.ready_path))
                if code is not None and code < 500 and code != 404:
                    todo.remove(svc)
            if todo and time.monotonic() > deadline:
                tails = "\n".join(f"{_tail(s.dir / 'server.log', 15)}\n{_tail(s.log_file, 15)}"
                                  for s in todo)
                raise TestBedError(f"not answering after {self.start_timeout:.0f}s: "
                                   f"{', '.join(s.name for s in todo)}\n{tails}")
            if todo:
                time.sleep(0.2)

    def _write_pids(self) -> None:
        assert self.base is not None
        run = self.base / "run"
        run.mkdir(exist_ok=True)
        for svc in self._services.values():
            assert svc.proc is not None
            _write(run / f"{svc.name}.pid", f"{svc.proc.pid}\n")

    def _write_state(self) -> None:
        assert self.base is not None
        state = {
            "env": self.env, "target_env": self.target_env, "admin_env": self.admin_env,
            "target_admin_env": self.target_admin_env, "regions": self.regions,
            "target_regions": self.target_regions, "glance_urls": self._glance_urls,
            "pids": self._current_pids(),
            "server": self.server, "launched": self._launched,
        }
        _write(self.base / "state.json", json.dumps(state, indent=2) + "\n")
        _write(self.base / "openrc", self.exports())

    def exports(self) -> str:
        """``export ...`` lines for a shell: OS_* (tenant), TARGET_OS_*, GLANCESYNC_TESTBED_*."""
        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.env.items()]
        lines += [f"export TARGET_{k}={shlex.quote(v)}" for k, v in self.target_env.items()]
        lines += [
            f"export GLANCESYNC_TESTBED_BASE={shlex.quote(str(self.base))}",
            "export GLANCESYNC_TESTBED_ADMIN_PASSWORD="
            + shlex.quote(self.admin_env["OS_PASSWORD"]),
        ]
        return "\n".join(lines) + "\n"


def stop_base(base: Path | str) -> int:
    """Stop the servers recorded in ``base/run/*.pid`` (by PID, checked against /proc)."""
    base = Path(base).absolute()
    pgids = []
    for pidfile in sorted((base / "run").glob("*.pid")):
        try:
            pgids.append(int(pidfile.read_text()))
        except ValueError:
            pass
        pidfile.unlink()
    # every pid recorded is a uwsgi/gunicorn master (setpriv, when used, execs it), started as
    # the leader of its own process group (session)
    alive = [g for g in pgids if any(base.as_posix() in _cmdline(p) for p in _pgroup_members(g))]
    stop_groups(alive, marker=base.as_posix())
    return len(alive)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="glancesync's Keystone + Glance test bed")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start it, print export lines, leave it running")
    up.add_argument("--server", choices=sorted(SERVERS), help="default: uwsgi")
    down = sub.add_parser("down", help="stop the test bed started in BASE")
    down.add_argument("base", help="the GLANCESYNC_TESTBED_BASE printed by 'up'")
    down.add_argument("--purge", action="store_true", help="also delete BASE")
    venv = sub.add_parser("venv", help="only install the server venv (and its db templates)")
    venv.add_argument("--server", choices=sorted(SERVERS), help="default: uwsgi")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "venv":
            sv = ensure_venv(server=args.server)
            print(sv.path)
        elif args.cmd == "up":
            bed = TestBed(server=args.server, die_with_parent=False, keep=True)
            bed.start()
            atexit.unregister(bed.stop)  # leave it running
            sys.stdout.write(bed.exports())
            _log(f"stop it with: {sys.argv[0]} down {bed.base}")
        else:
            n = stop_base(args.base)
            _log(f"stopped {n} server(s) of {args.base}")
            if args.purge:
                shutil.rmtree(args.base, ignore_errors=True)
    except TestBedError as e:
        _log(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
