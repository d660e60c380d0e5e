"""The sync tasks: a bounded pool of threads running the CLI's engine, one region a task.

Each task gets its own :class:`Runner` (fresh facades, a fresh master listing: the same
plan and executor as ``glancesync REGION``), and a logging handler that keeps the engine's
lines emitted by *its* thread, written to the database as they come.

Stopping (SIGTERM): a task inside the engine gets :class:`Interrupted` raised in its
thread, as a signal does in the CLI's main thread, so the executor deletes the copy in
flight or finishes/undoes the swap under way; the task ends ``failed`` "interrupted".
A task still running when the grace period is over, or one waiting for a worker, is
marked the same way in the database before the process exits.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from glancesync.api.db import FAILED, SYNCED, TaskStore
from glancesync.exceptions import GlanceSyncError, Interrupted, LockError
from glancesync.executor import RegionResult
from glancesync.lock import UnsafeLock
from glancesync.runner import RegionRef, Runner

log = logging.getLogger("glancesync.api")

LOG_FLUSH_SECONDS = 0.0  # every line at once: GET shows the run as it goes
LOCK_POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_STALE = 4 * HEARTBEAT_SECONDS  # a task not heard of for so long has no server
INTERRUPTED = "interrupted: the server stopped; the operation in progress was cleaned up"

RunnerFactory = Callable[[], Runner]
LockFactory = Callable[[], AbstractContextManager[None]]


class SharedRunLock:
    """The CLI's run lock of the configuration, held while any task of this process runs.

    A ``glancesync`` run from cron and a task must never write one region at the same
    time; tasks of one server run side by side (each its own region), as the regions of
    one ``--parallel`` run do under its single lock. While another run holds it (a CLI
    run, or the tasks of another server process), a task waits, still ``syncing``.
    """

    def __init__(self, make: LockFactory | None) -> None:
        self._make = make
        self._held: AbstractContextManager[None] | None = None
        self._users = 0
        self._lock = threading.Lock()

    def acquire(self, stopping: threading.Event, waiting: Callable[[str], None]) -> None:
        """Hold it (or count one more user); StopTask if the server stops meanwhile."""
        with self._lock:
            if self._users == 0 and self._make is not None:
                told = False
                while True:
                    held = self._make()
                    try:
                        held.__enter__()
                        break
                    except UnsafeLock:
                        raise  # a lock file nobody may trust: no waiting fixes that
                    except LockError as exc:
                        if not told:
                            waiting(str(exc))
                            told = True
                    if stopping.wait(LOCK_POLL_SECONDS):
                        raise StopTask()
                self._held = held
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._held is not None:
                held, self._held = self._held, None
                held.__exit__(None, None, None)


class StopTask(Interrupted):
    """Raised inside a task's thread when the server stops (its SIGTERM, as seen there)."""

    def __init__(self) -> None:
        super().__init__(signal.SIGTERM, "SIGTERM")


class TaskLogHandler(logging.Handler):
    """Keeps the records of one thread (the task's), flushed to the database in batches."""

    def __init__(self, store: TaskStore, task_id: str, thread_id: int) -> None:
        super().__init__(logging.INFO)
        self.store = store
        self.task_id = task_id
        self.thread_id = thread_id
        self.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
        self._pending: list[str] = []
        self._written = 0
        self._last_flush = time.monotonic()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread_id

    def emit(self, record: logging.LogRecord) -> None:
        self._pending.append(self.format(record))
        if time.monotonic() - self._last_flush >= LOG_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        try:
            self.store.add_log(self.task_id, self._written, lines)
            self._written += len(lines)
        except Exception as exc:  # the database is busy or gone: keep them for next time
            self._pending = lines + self._pending
            log.warning(f"task {self.task_id}: log lines not saved yet: {exc}")
        self._last_flush = time.monotonic()


def result_summary(result: RegionResult) -> dict[str, Any]:
    """What a task keeps of the region's result (JSON)."""
    return {
        "uploaded": result.uploaded,
        "replaced": result.replaced,
        "renamed": result.renamed,
        "metadata_updates": result.metadata_updates,
        "uploaded_bytes": result.uploaded_bytes,
        "failures": list(result.failures),
        "needs_operator": list(result.needs_operator),
        "elapsed": round(result.elapsed, 3),
    }


def outcome(result: RegionResult) -> tuple[str, str | None]:
    """(task status, message) for a region's result."""
    if not result.failed:
        return SYNCED, None
    if result.error:
        return FAILED, result.error
    failures = result.failures
    shown = "; ".join(failures[:3]) + ("; ..." if len(failures) > 3 else "")
    return FAILED, f"{len(failures)} image(s) failed: {shown}"


@dataclass
class _Running:
    task_id: str
    ref: RegionRef
    thread_id: int | None = None
    in_engine: bool = False
    stop_sent: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class TaskPool:
    """``size`` daemon threads taking tasks from a queue (daemon: a task stuck in a socket
    read must not keep a stopped server alive; its task is marked interrupted instead)."""

    def __init__(
        self,
        store: TaskStore,
        make_runner: RunnerFactory,
        size: int = 2,
        run_lock: LockFactory | None = None,
    ) -> None:
        self.store = store
        self.make_runner = make_runner
        self.run_lock = SharedRunLock(run_lock)
        self.size = size
        self._queue: queue.Queue[_Running | None] = queue.Queue()
        self._active: dict[str, _Running] = {}  # queued or running, by task id
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        for n in range(self.size):
            thread = threading.Thread(target=self._work, name=f"sync-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        beat.start()
        self._threads.append(beat)

    def submit(self, task_id: str, ref: RegionRef) -> None:
        item = _Running(task_id, ref)
        with self._lock:
            self._active[task_id] = item
        self._queue.put(item)

    def active(self) -> list[str]:
        with self._lock:
            return list(self._active)

    # -- the workers --------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            try:
                self._run(item)
            except BaseException as exc:  # noqa: B036 - a worker must never die silently
                log.exception(f"task {item.task_id}: not recorded: {exc!r}")
            finally:
                with self._lock:
                    self._active.pop(item.task_id, None)

    def _run(self, item: _Running) -> None:
        item.thread_id = threading.get_ident()
        handler = TaskLogHandler(self.store, item.task_id, item.thread_id)
        engine_log = logging.getLogger("glancesync")
        engine_log.addHandler(handler)
        status, result, message = FAILED, None, INTERRUPTED
        runner: Runner | None = None
        locked = False
        try:
            try:
                log.info(f"task {item.task_id}: synchronising {item.ref.fullname}")
                self.run_lock.acquire(
                    self._stopping,
                    lambda why: log.warning(f"{item.ref.fullname}: waiting: {why}"),
                )
                locked = True
                runner = self.make_runner()
                with item.lock:
                    item.in_engine = not self._stopping.is_set()
                if not item.in_engine:
                    raise StopTask()
                region_result = runner.sync_region(item.ref, dry_run=False)
                with item.lock:
                    item.in_engine = False
                result = result_summary(region_result)
                status, message = outcome(region_result)
            except Interrupted as exc:
                log.error(f"{item.ref.fullname}: {exc}; the operation in progress was cleaned up")
                status, message = FAILED, INTERRUPTED
            except GlanceSyncError as exc:
                log.error(f"{item.ref.fullname}: {exc}")
                status, message = FAILED, str(exc)
            except Exception as exc:
                log.exception(f"{item.ref.fullname}: unexpected error: {exc!r}")
                status, message = FAILED, f"unexpected error: {exc!r}"
            finally:
                item.in_engine = False
                if runner is not None:
                    runner.close()
                if locked:
                    self.run_lock.release()
            log.info(f"task {item.task_id}: {item.ref.fullname} {status}")
        finally:
            engine_log.removeHandler(handler)
            handler.flush()
            self.store.finish_task(item.task_id, status, result, message)

    def _heartbeat(self) -> None:
        while not self._stopping.wait(HEARTBEAT_SECONDS):
            try:
                self.store.heartbeat(self.active())
            except Exception as exc:
                log.warning(f"heartbeat not recorded: {exc}")

    # -- stopping -----------------------------------------------------------------------
    def stop(self, timeout: float) -> None:
        """Interrupt the running tasks, wait up to ``timeout`` s, mark what is left."""
        self._stopping.set()
        with self._lock:
            items = list(self._active.values())
        for item in items:
            with item.lock:
                if item.in_engine and not item.stop_sent and item.thread_id is not None:
                    item.stop_sent = True
                    log.warning(f"task {item.task_id}: interrupting {item.ref.fullname}")
                    _raise_in_thread(item.thread_id, StopTask)
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        while self.active() and time.monotonic() < deadline:
            # queued ones never start: no worker takes them once stopping
            with self._lock:
                for task_id, item in list(self._active.items()):
                    if item.thread_id is None:
                        self.store.finish_task(task_id, FAILED, None, INTERRUPTED)
                        del self._active[task_id]
            time.sleep(0.1)
        for task_id in self.active():
            log.error(f"task {task_id}: still running after {timeout:.0f} s: marked interrupted")
            self.store.finish_task(task_id, FAILED, None, INTERRUPTED)


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> None:
    """``exc_type`` raised in that thread at its next Python instruction (as a signal is)."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    if done > 1:  # never happens with a valid id; undo as the C API asks
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)


def owner_is_dead(owner: str, heartbeat_age: float, me: str) -> bool:
    """Whether the server that ran a ``syncing`` task is gone (at our start).

    Same host: its process is gone (or it is us: we just started, we run no task yet), or
    it stopped beating. Another host: it stopped beating (a restarted container gets
    another host name).
    """
    if owner == me:
        return True
    host, _, pid_text = owner.rpartition(" ")
    stale = heartbeat_age > HEARTBEAT_STALE
    if host == socket.gethostname():
        try:
            pid = int(pid_text)
        except ValueError:
            return True
        return not _pid_alive(pid) or stale
    return stale


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
