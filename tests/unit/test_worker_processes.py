"""glancesync.status.in_processes: results in order, log records, errors, dead workers."""

from __future__ import annotations

import logging
import os
import signal
import time

import pytest

from glancesync.exceptions import BadInput, FacadeError, GlanceSyncError, Interrupted
from glancesync.interrupt import stop_on_signals
from glancesync.status import in_processes

log = logging.getLogger("glancesync")


def compute(item: int) -> tuple[int, int]:
    log.warning(f"item {item}")
    if item % 5 == 3:
        raise BadInput(f"item {item} is malformed")
    return item * item, os.getpid()


def test_results_and_log_records_come_in_item_order(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "glancesync")
    results = []
    for outcome in in_processes(compute, list(range(12)), 3):
        if isinstance(outcome, FacadeError):
            log.info(f"error: {outcome}")
            results.append(type(outcome))
        else:
            results.append(outcome[0])
            assert outcome[1] != os.getpid()  # computed in a worker
    assert results == [0, 1, 4, BadInput, 16, 25, 36, 49, BadInput, 81, 100, 121]
    lines = [r.getMessage() for r in caplog.records]
    expected = []
    for item in range(12):
        expected.append(f"item {item}")
        if item % 5 == 3:
            expected.append(f"error: item {item} is malformed")
    assert lines == expected


def unexpected(item: int) -> int:
    if item == 2:
        raise ValueError("a bug")
    return item


def test_an_unexpected_error_is_raised_in_the_parent() -> None:
    seen = []
    with pytest.raises(ValueError, match="a bug"):
        for outcome in in_processes(unexpected, [0, 1, 2, 3], 2):
            seen.append(outcome)
    assert seen == [0, 1]


def dies(item: int) -> int:
    if item == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
    return item


def test_a_dead_worker_is_an_error_not_a_hang() -> None:
    started = time.monotonic()
    with pytest.raises(GlanceSyncError, match="status worker process was killed by SIGKILL"):
        list(in_processes(dies, [0, 1, 2, 3], 2))
    assert time.monotonic() - started < 30


def sleepy(item: int) -> int:
    if item:
        time.sleep(30)
    return item


def test_workers_are_stopped_when_the_caller_stops_early() -> None:
    before = _children()  # (other tests' servers may be running)
    outcomes = in_processes(sleepy, [0, 1], 2)
    assert next(outcomes) == 0
    workers = _children() - before
    assert len(workers) == 2  # one done (not reaped yet), one still working
    outcomes.close()
    assert not (_children() & workers)  # killed and reaped


def test_workers_are_stopped_when_the_caller_is_interrupted() -> None:
    # A signal handler raising while the parent waits (SIGINT raises KeyboardInterrupt or
    # Interrupted the same way): the exception goes through, the workers go with it.
    before = _children()  # (other tests' servers may be running)
    signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(TimeoutError):
            list(in_processes(sleepy, [1, 2], 2))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert not _children() - before


def _timeout(signum: int, frame: object) -> None:
    raise TimeoutError


def _children() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.add(int(entry))
    return found


def test_workers_are_stopped_when_a_signal_comes_while_they_are_forked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Signals wait while the workers are forked; one that came meanwhile is delivered
    # right after, before any result: the workers go with it too.
    before = _children()
    fork = os.fork

    def fork_then_signal() -> int:
        pid = fork()
        if pid:  # in the parent: Ctrl-C while the forks are under way
            os.kill(os.getpid(), signal.SIGINT)
        return pid

    monkeypatch.setattr(os, "fork", fork_then_signal)
    with pytest.raises(Interrupted), stop_on_signals():
        next(in_processes(sleepy, [1, 2], 2))
    assert not _children() - before
