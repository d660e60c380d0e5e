"""A throwaway PostgreSQL cluster on 127.0.0.1 for the API's live tests (stdlib only).

Uses the distribution's server binaries (``/usr/lib/postgresql/*/bin``, installed by
scripts/install-system-deps.sh). PostgreSQL refuses to run as root: as root the cluster
belongs to ``nobody`` (``runuser``). Trust authentication on loopback, no fsync: it is
created for one test session and removed with everything in it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

try:  # tests/integration as a package or on sys.path
    from .testbed import HOST, free_ports
except ImportError:
    from testbed import HOST, free_ports

RUN_AS = "nobody"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL cannot be run here (the reason says what to install)."""


def server_bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    found = candidates[-1] if candidates else shutil.which("initdb")
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no initdb): run scripts/install-system-deps.sh "
            "(apt-get install postgresql)"
        )
    return Path(found).parent


class PostgresCluster:
    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.base: Path | None = None
        self.port = 0
        self._prefix: list[str] = []

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    def _run(self, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            self._prefix + list(args), capture_output=True, text=True, timeout=timeout,
            cwd=self.base,
        )  # fmt: skip
        if proc.returncode != 0:
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}"
            )

    def start(self) -> PostgresCluster:
        self.base = Path(tempfile.mkdtemp(prefix="glancesync-pg-"))
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if not runuser:
                raise PostgresUnavailable("running as root and no runuser to drop to nobody")
            shutil.chown(self.base, RUN_AS)
            self._prefix = [runuser, "-u", RUN_AS, "--"]
        self.port = free_ports(1)[0]
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        options = (
            f"-c listen_addresses={HOST} -p {self.port} -k {self.base} -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.base / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"host={HOST} port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self.base is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop", timeout=60)  # fmt: skip
            except (PostgresUnavailable, subprocess.TimeoutExpired):
                pass  # rmtree below; the log says more
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
