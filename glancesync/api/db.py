"""Tasks in a real database through SQLAlchemy: SQLite by default, any URL (PostgreSQL).

One row per task, one row per log line. A partial unique index (``status = 'syncing'``)
lets the database itself refuse a second running task for a region, so the rule holds
across worker processes and servers sharing one database, not only within a process.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from glancesync.exceptions import ConfigError

SYNCING, SYNCED, FAILED = "syncing", "synced", "failed"
SCHEMA_VERSION = 1
DB_FILE = "glancesync-api.db"


class Base(DeclarativeBase):
    pass


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16))
    requester: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # which server runs it: "host pid": a restart on the same host can tell its tasks died
    owner: Mapped[str] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index(
            "one_syncing_task_per_region",
            "region",
            unique=True,
            sqlite_where=(status == SYNCING),
            postgresql_where=(status == SYNCING),
        ),
    )


class TaskLog(Base):
    __tablename__ = "task_log"

    task_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    line: Mapped[str] = mapped_column(Text)


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)


@dataclass
class TaskView:
    """A task as the API shows it (plain data, no session attached)."""

    id: str
    region: str
    status: str
    requester: str
    started_at: datetime
    ended_at: datetime | None
    result: dict[str, Any] | None
    message: str | None
    log: list[str] = field(default_factory=list)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def this_owner() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def default_state_dir() -> Path:
    """systemd's StateDirectory=, else $XDG_STATE_HOME/glancesync, else ~/.local/state/..."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "glancesync"


def default_url(state_dir: Path | None = None) -> str:
    return f"sqlite:///{(state_dir or default_state_dir()) / DB_FILE}"


def redact(url: str) -> str:
    """The URL without its password (for logs and messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable URL>"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; ConfigError (one line, no password) when it cannot be used."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            f"--database: not an SQLAlchemy URL: {redact(url)} "
            "(e.g. sqlite:////var/lib/glancesync/api.db or postgresql+psycopg://u:p@host/db)"
        ) from None
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we declare
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # request threads and task threads share the pool; wait for a writer, not fail
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"--database {redact(url)}: the driver is not installed ({exc.name}); for "
            "PostgreSQL: pip install 'glancesync[postgresql]'"
        ) from None
    except ArgumentError as exc:
        raise ConfigError(f"--database {redact(url)}: {exc}") from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (GET) never wait for the task threads writing log lines
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class TaskStore:
    """Every database access of the API (thread-safe: one short session per call)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session.begin() as session:
            yield session

    def create_schema(self) -> None:
        """Create the tables (or check them); later versions migrate from SCHEMA_VERSION."""
        try:
            Base.metadata.create_all(self.engine)
            with self.session() as s:
                found = s.scalar(select(func.max(SchemaVersion.version)))
                if found is None:
                    s.add(SchemaVersion(version=SCHEMA_VERSION))
                elif found > SCHEMA_VERSION:
                    raise ConfigError(
                        f"database {redact(str(self.engine.url))} has schema version {found}, "
                        f"newer than this glancesync ({SCHEMA_VERSION}): upgrade glancesync"
                    )
        except OperationalError as exc:
            raise ConfigError(
                f"database {redact(str(self.engine.url))}: {_first_line(exc)}"
            ) from None

    # -- tasks -----------------------------------------------------------------------
    def start_task(self, region: str, requester: str) -> tuple[str, bool]:
        """(task id, created): a new ``syncing`` task, or the one already running there."""
        for _ in range(3):
            task_id = uuid.uuid4().hex
            now = utcnow()
            try:
                with self.session() as s:
                    s.add(
                        Task(
                            id=task_id,
                            region=region,
                            status=SYNCING,
                            requester=requester,
                            started_at=now,
                            heartbeat_at=now,
                            owner=this_owner(),
                        )
                    )
                return task_id, True
            except IntegrityError:
                running = self.running_task(region)
                if running is not None:
                    return running, False
                # it ended between our insert and our look: try again
        raise RuntimeError(f"cannot start a task for {region}")  # pragma: no cover

    def running_task(self, region: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(Task.id).where(Task.region == region, Task.status == SYNCING))

    def finish_task(
        self, task_id: str, status: str, result: dict[str, Any] | None, message: str | None
    ) -> None:
        with self.session() as s:
            s.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == SYNCING)
                .values(status=status, result=result, message=message, ended_at=utcnow())
            )

    def add_log(self, task_id: str, first_seq: int, lines: list[str]) -> None:
        if not lines:
            return
        with self.session() as s:
            s.add_all(
                TaskLog(task_id=task_id, seq=first_seq + i, line=line)
                for i, line in enumerate(lines)
            )

    def get_task(self, task_id: str) -> TaskView | None:
        with self.session() as s:
            task = s.get(Task, task_id)
            if task is None:
                return None
            lines = s.scalars(
                select(TaskLog.line).where(TaskLog.task_id == task_id).order_by(TaskLog.seq)
            ).all()
            return TaskView(
                id=task.id,
                region=task.region,
                status=task.status,
                requester=task.requester,
                started_at=_aware(task.started_at),
                ended_at=_aware(task.ended_at) if task.ended_at else None,
                result=task.result,
                message=task.message,
                log=list(lines),
            )

    def delete_task(self, task_id: str) -> None:
        with self.session() as s:
            s.execute(delete(TaskLog).where(TaskLog.task_id == task_id))
            s.execute(delete(Task).where(Task.id == task_id))

    def heartbeat(self, task_ids: list[str]) -> None:
        """These tasks' server is alive (see ``mark_dead_tasks``)."""
        if task_ids:
            with self.session() as s:
                s.execute(
                    update(Task)
                    .where(Task.id.in_(task_ids), Task.status == SYNCING)
                    .values(heartbeat_at=utcnow())
                )

    def mark_dead_tasks(self, is_dead: Callable[[str, float], bool], message: str) -> list[str]:
        """Tasks ``syncing`` whose server ``is_dead(owner, seconds since its heartbeat)``
        become ``failed`` with ``message``; their ids."""
        with self.session() as s:
            rows = s.execute(
                select(Task.id, Task.owner, Task.heartbeat_at).where(Task.status == SYNCING)
            ).all()
            now = utcnow()
            dead = [
                task_id
                for task_id, owner, beat in rows
                if is_dead(owner, (now - _aware(beat)).total_seconds())
            ]
            if dead:
                s.execute(
                    update(Task)
                    .where(Task.id.in_(dead), Task.status == SYNCING)
                    .values(
                        status=FAILED,
                        ended_at=utcnow(),
                        message=message,
                    )
                )
            return dead


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
