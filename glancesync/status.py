"""What ``--show-status`` and the API show of a region, and planning many regions at once.

A :class:`RegionStatus` is the part of a region's plan (plan.py decides every status) that
is shown: the status of every selected master image there, the obsolete renames, the
warnings. It is small and plain, so worker processes can send it back.

:func:`in_processes` plans regions in forked worker processes, one region at a time per
worker, results in region order. Planning is CPU work (reading and parsing a region's
backup file, comparing every image), so an offline ``--show-status`` over many big
regions uses every core instead of one. The workers are forks of the run: they share the
master listing and the configuration read once by the parent. Their log lines are handed
back with their results and written by the parent, in region order, exactly as a
sequential run writes them.
"""

from __future__ import annotations

import gc
import logging
import os
import pickle
import selectors
import signal
import struct
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple, TypeVar

from glancesync.exceptions import FacadeError, GlanceSyncError
from glancesync.interrupt import signals_deferred
from glancesync.plan import RegionPlan

T = TypeVar("T")


class ImageStatus(NamedTuple):
    status: str
    image: str  # the master image's name
    size: int
    master_id: str
    dest_id: str | None  # the copy in the region (None: not there)
    changes: tuple[str, ...]  # sorted names of what a sync changes in the copy's metadata
    problem: str  # why an error_* image cannot be synchronised


@dataclass
class RegionStatus:
    """One region's statuses, kept as columns (one entry per selected master image, by
    size then name): a worker sends a region of thousands of images back in a few
    milliseconds, where one object per image took tens of them."""

    region: str  # fullname
    statuses: list[str]
    names: Sequence[str]  # the master images' names (shared by the regions of a target)
    sizes: Sequence[int]
    master_ids: Sequence[str]
    dest_ids: list[str | None]  # the copy in the region (None: not there)
    changes: dict[int, tuple[str, ...]]  # index -> sorted names of what a sync changes
    problems: dict[int, str]  # index -> why that error_* image cannot be synchronised
    obsolete: list[tuple[str, str]]  # (name of the copy, its new name)
    warnings: list[str]
    has_work: bool  # a sync would change something
    needs_operator: bool  # some image is error_*

    @classmethod
    def of(cls, plan: RegionPlan) -> RegionStatus:
        images, facts = plan.images, plan.facts  # (images: facts.selected, in its order)
        return cls(
            plan.region,
            list(map(attrgetter("status"), images)),
            facts.names,
            facts.sizes,
            facts.ids,
            [p.dest.id if p.dest is not None else None for p in images],
            {n: tuple(sorted(p.changes)) for n, p in enumerate(images) if p.changes},
            {n: p.problem for n, p in enumerate(images) if p.problem},
            [(u.dest.name or "", u.new_name) for u in plan.obsolete],
            plan.warnings,
            plan.has_work,
            bool(plan.needs_operator),
        )

    @property
    def images(self) -> list[ImageStatus]:
        changes, problems = self.changes, self.problems
        return [
            ImageStatus(*fields, changes.get(n, ()), problems.get(n, ""))
            for n, fields in enumerate(
                zip(
                    self.statuses, self.names, self.sizes, self.master_ids, self.dest_ids,
                    strict=True,
                )
            )
        ]


# Each worker holds one region in memory: beyond a few, more workers cost more memory
# than they save time (and a container may see more CPUs than its quota lets it use).
MAX_WORKERS = 8


def usable_cpus() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    return min(cpus, MAX_WORKERS)


def can_fork() -> bool:
    """Whether worker processes can be forked safely from here: a platform with fork and
    no other thread running (a forked child gets only the calling thread: locks other
    threads held would stay held in it, as in a threaded server)."""
    return hasattr(os, "fork") and threading.active_count() == 1


_INDEX = struct.Struct("!I")  # 4 bytes: read from a pipe in one piece, by one worker
_HEADER = struct.Struct("!QI")  # a result: the length of its pickle, its item's index


def in_processes(
    compute: Callable[[T], RegionStatus], items: Sequence[T], processes: int
) -> Generator[RegionStatus | FacadeError, None, None]:
    """``compute(item)`` for every item in ``processes`` forked workers; yields the
    results in the order of ``items``, each after its log records are written. A worker
    takes the next item as soon as it is free (a slower CPU takes fewer). A FacadeError
    raised by ``compute`` is yielded, any other exception is raised here, as is a
    GlanceSyncError when a worker dies (killed by the kernel for memory...). However the
    caller stops (an interruption, an error), the workers are killed and reaped: they
    only read."""
    # Every item's index, in order, in one pipe the workers share.
    todo_read, todo_write = os.pipe()
    os.write(todo_write, b"".join(_INDEX.pack(n) for n in range(len(items))))
    os.close(todo_write)  # once they are taken, a worker reads the end: it is done
    workers: list[tuple[int, int]] = []  # (pid, read end of its results pipe)
    try:
        # Signals wait until a worker has set its own handling (inherited, the parent's
        # handler would raise in it); the parent gets them right after the forks.
        with signals_deferred() as mask:
            for _n in range(processes):
                read_end, write_end = os.pipe()
                pid = os.fork()
                if pid == 0:  # pragma: no cover (in the worker; its exit code is checked)
                    os.close(read_end)
                    for _pid, other in workers:
                        os.close(other)
                    _serve(compute, items, todo_read, write_end, mask)
                os.close(write_end)
                workers.append((pid, read_end))
    except BaseException:  # a fork failed, or a signal came meanwhile
        _stop(workers)
        raise
    finally:
        os.close(todo_read)
    try:
        yield from _collect(workers, len(items))
    finally:
        _stop(workers)


def _serve(
    compute: Callable[[Any], Any], items: Sequence[Any], todo: int, fd: int, mask: Any
) -> None:
    """A worker's life: the next item's index from ``todo``, its result and log records,
    pickled, to the parent; until no index is left."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles it
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        gc.disable()  # short-lived, and what it reads holds no reference cycle
        logging.Logger.callHandlers = _keep  # type: ignore[method-assign]
        while len(taken := os.read(todo, _INDEX.size)) == _INDEX.size:
            (index,) = _INDEX.unpack(taken)
            _records.clear()
            try:
                result: Any = compute(items[index])
            except FacadeError as exc:
                result = exc
            except Exception as exc:  # raised again in the parent
                result = _Failure(exc)
            try:
                data = pickle.dumps((result, _records), pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # an exception that cannot be pickled
                data = pickle.dumps((_Failure(RuntimeError(repr(exc))), _records))
            view = memoryview(_HEADER.pack(len(data), index) + data)
            while view:
                view = view[os.write(fd, view) :]
    except BaseException:
        code = 1
    finally:
        os._exit(code)  # no clean-up of the parent's state: it is the parent's


class _Failure:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc


_records: list[logging.LogRecord] = []


def _keep(logger: logging.Logger, record: logging.LogRecord) -> None:
    # In a worker: a record that passed the logger's level and filters, where handlers
    # would get it, kept for the parent.
    record.msg, record.args = record.getMessage(), None
    if record.exc_info:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
    _records.append(record)


def _collect(workers: list[tuple[int, int]], count: int) -> Iterator[Any]:
    """The workers' results in item order, read from all their pipes as they come (a
    worker never waits for the parent to want its result)."""
    selector = selectors.DefaultSelector()
    buffers = {fd: bytearray() for _pid, fd in workers}
    pids = {fd: pid for pid, fd in workers}
    done: dict[int, bytes] = {}  # item index -> its pickled result
    for _pid, fd in workers:
        selector.register(fd, selectors.EVENT_READ)
    try:
        for index in range(count):
            while index not in done:
                if not selector.get_map():
                    raise GlanceSyncError("status worker processes ended early")
                for key, _events in selector.select():
                    if not _read(key.fd, buffers[key.fd], done):
                        selector.unregister(key.fd)
                        ended = _ended(pids[key.fd])
                        if ended:
                            raise GlanceSyncError(f"a status worker process {ended}")
            result, records = pickle.loads(done.pop(index))
            for record in records:
                logging.getLogger(record.name).handle(record)
            if isinstance(result, _Failure):
                raise result.exc
            yield result
    finally:
        selector.close()


def _read(fd: int, buffer: bytearray, done: dict[int, bytes]) -> bool:
    """Read what the worker wrote; False at its end."""
    chunk = os.read(fd, 1 << 20)
    if not chunk:
        return False
    buffer += chunk
    while len(buffer) >= _HEADER.size:
        length, index = _HEADER.unpack_from(buffer)
        end = _HEADER.size + length
        if len(buffer) < end:
            break
        done[index] = bytes(buffer[_HEADER.size : end])
        del buffer[:end]
    return True


def _ended(pid: int) -> str:
    """How the worker ended, without reaping it (_stop does, for every worker); "" when
    it ended as it should (every item it took was answered)."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if info is not None and info.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return f"was killed by {signal.Signals(info.si_status).name}"
    if info is not None and info.si_status == 0:
        return ""
    return f"ended early (exit code {info.si_status if info else '?'})"


def _stop(workers: list[tuple[int, int]]) -> None:
    for pid, fd in workers:
        os.close(fd)
        os.kill(pid, signal.SIGKILL)  # a worker that has ended is a zombie until reaped
        os.waitpid(pid, 0)
    workers.clear()
