"""Which run made a temporary copy, and which temporary copies are leftovers.

Every new copy is uploaded under a temporary name, private and hidden, carrying the user
property ``glancesync_run``. The value identifies the run: a random id, the host, the
process id and the start time. Once verified the copy is put in place and the property
removed, so only a copy whose run stopped half-way (a hard kill, a power loss) keeps it.
The next run deletes such leftovers before it plans.

A copy is a leftover when no live run can still be working on it: its run is not one of
this process's live runs and, on this host, its process is gone; a copy of another host
is a leftover once it is older than ``FOREIGN_HOST_GRACE`` (that host's run may be alive).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

MARKER = "glancesync_run"
TEMP_INFIX = ".glancesync-tmp-"
FOREIGN_HOST_GRACE = 24 * 3600  # seconds

_live_runs: set[str] = set()  # ids of the runs under way in this process


@dataclass(frozen=True)
class RunId:
    id: str = field(default_factory=lambda: os.urandom(16).hex())  # 32 random hex digits
    host: str = field(default_factory=lambda: os.uname().nodename)  # (= gethostname)
    pid: int = field(default_factory=os.getpid)
    started: int = field(default_factory=lambda: int(time.time()))

    @property
    def value(self) -> str:
        return f"{self.id} host={self.host} pid={self.pid} started={self.started}"

    def temp_name(self, name: str) -> str:
        return f"{name}{TEMP_INFIX}{self.id[:8]}"

    @classmethod
    def parse(cls, value: str) -> RunId | None:
        parts = value.split()
        if len(parts) != 4:
            return None
        fields = dict(part.partition("=")[::2] for part in parts[1:])
        try:
            return cls(parts[0], fields["host"], int(fields["pid"]), int(fields["started"]))
        except (KeyError, ValueError):
            return None


def start_run() -> RunId:
    run = RunId()
    _live_runs.add(run.id)
    return run


def end_run(run: RunId) -> None:
    _live_runs.discard(run.id)


def is_leftover(properties: dict[str, str], now: float | None = None) -> bool:
    """Whether an image carrying these properties is a temporary copy nobody works on."""
    value = properties.get(MARKER)
    if value is None:
        return False
    run = RunId.parse(value)
    if run is None:
        return True  # a marker we cannot read: never a live run of ours
    if run.id in _live_runs:
        return False
    if run.host == os.uname().nodename:
        return run.pid == os.getpid() or not _pid_alive(run.pid)
    return (now if now is not None else time.time()) - run.started > FOREIGN_HOST_GRACE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True
