"""The run lock: one per configuration, whoever runs it and from whatever environment.

Two syncs of one configuration must never overlap, whether cron (no XDG_RUNTIME_DIR),
a login shell, systemd (as the service user) or root by hand started them. So the
path depends only on the configuration file's real path and the user:
``/run/lock/glancesync/<key>.lock`` for root, ``/run/lock/glancesync-<uid>/<key>.lock``
for any other user (``/var/lock`` when there is no ``/run/lock``; ``<key>``: the start
of the SHA-256 of the file's real path, or of the master's Keystone and region for an
environment-only configuration). Each user needs a directory of its own because nobody
may write in a directory another user can write; a run takes its own lock file, then
the same configuration's lock file of every other user that has one (read-only: flock
needs no write access), so runs of different users exclude each other too. A run that
starts while another one takes its locks may also give up: at worst both stop, never
both run. An ``--offline DIR`` run locks ``DIR/.glancesync.lock``.

A lock file is opened without following a symbolic link and never truncated: a planted
symlink or a ``--lock-file`` naming some precious file cannot make a sync destroy
anything. The holder's pid is written only into a file that holds nothing else. The
directory must not be writable by other users (else anyone could swap the lock file);
the lock is a ``flock``, which the kernel releases when its holder dies, so a dead run
never blocks the next one.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from glancesync.config import ENVIRONMENT_SOURCE, Settings
from glancesync.exceptions import EXIT_USAGE, LockError


class UnsafeLock(LockError):
    """The lock cannot be used safely (symlink, directory others can write, not a plain
    file...): no later run can fix that, the operator must (exit 2)."""

    exit_code = EXIT_USAGE


LOCK_BASES = ("/run/lock", "/var/lock")
PID_WIDTH = 12  # "<pid>" padded: rewriting it never needs a truncation
_PID_CONTENT = re.compile(rb"\s*\d*\s*")


def config_key(settings: Settings) -> str:
    """What identifies a configuration: its file's real path (a symlink or a relative
    path to it gives the same key), else the master's Keystone and region."""
    if settings.source != ENVIRONMENT_SOURCE:
        identity = "file:" + os.path.realpath(settings.source)
    else:
        creds = settings.master.credentials
        # OS_* credentials stay in the environment (openstacksdk reads them): their Keystone
        # is $OS_AUTH_URL.
        keystone = creds.cloud or creds.auth_url or os.environ.get("OS_AUTH_URL")
        identity = f"environment:{keystone}:{settings.master_region}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def lock_dir(uid: int | None = None, bases: tuple[str, ...] = LOCK_BASES) -> str:
    uid = os.geteuid() if uid is None else uid
    base = next((b for b in bases if os.path.isdir(b)), None)
    if base is None:
        raise UnsafeLock(
            f"no lock directory: none of {', '.join(bases)} exists; set --lock-file"
        )
    return os.path.join(base, "glancesync" if uid == 0 else f"glancesync-{uid}")


def default_lock_path(settings: Settings, offline_dir: str | None = None) -> str:
    if offline_dir:
        return os.path.join(offline_dir, ".glancesync.lock")
    directory = lock_dir()
    try:
        # Readable by all: the runs of other users check our lock; umask can only take
        # permissions away, and a directory others could write is refused in hold().
        os.mkdir(directory, 0o755)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UnsafeLock(
            f"cannot create the lock directory {directory}: {exc.strerror}; set --lock-file"
        ) from exc
    return os.path.join(directory, f"{config_key(settings)}.lock")


def check_directory(path: str) -> None:
    """LockError unless ``path`` is a directory only we (or root) can write."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise UnsafeLock(f"lock directory {path}: {exc.strerror}; set --lock-file") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeLock(f"lock directory {path} is not a directory; set --lock-file")
    uid, gid = os.geteuid(), os.getegid()
    if st.st_uid not in (uid, 0):
        raise UnsafeLock(
            f"lock directory {path} belongs to uid {st.st_uid}, not to this user: "
            "refusing it (remove it, or set --lock-file)"
        )
    if st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != gid):
        raise UnsafeLock(
            f"lock directory {path} is writable by other users (mode "
            f"{stat.S_IMODE(st.st_mode):o}): refusing it; use a --lock-file in a directory "
            "only this user can write"
        )


def peer_paths(own: str) -> list[str]:
    """The same configuration's lock files of the other users (see the module doc)."""
    directory = os.path.dirname(own)
    base, name = os.path.dirname(directory), os.path.basename(own)
    found = glob.glob(os.path.join(glob.escape(base), "glancesync*", glob.escape(name)))
    return sorted(path for path in found if os.path.dirname(path) != directory)


@contextmanager
def hold(path: str, peers: Callable[[], Iterable[str]] = tuple) -> Iterator[None]:
    """Hold the lock at ``path`` for the block, then the existing ``peers()`` lock files
    (listed only once ours is held, so that of two runs starting together at least the
    later sees the other); LockError when another run holds any of them."""
    check_directory(os.path.dirname(os.path.abspath(path)))
    fds: list[int] = []
    try:
        fd = _open_own(path)
        fds.append(fd)
        st = os.fstat(fd)
        _lock(fd, path)
        _write_pid(fd, st)
        for peer in peers():
            peer_fd = _open_peer(peer)
            if peer_fd is not None:
                fds.append(peer_fd)
                _lock(peer_fd, peer)
        yield
    finally:
        for fd in fds:
            os.close(fd)  # releases the flock


def _open_own(path: str) -> int:
    # No O_TRUNC ever; O_NOFOLLOW refuses a symlink; O_NONBLOCK: a FIFO planted there
    # must not hang the run (it is refused below as not a regular file).
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLock(
                f"lock file {path} is a symbolic link: refusing to follow it (remove it)"
            ) from exc
        raise UnsafeLock(
            f"cannot open lock file {path}: {exc.strerror} (set --lock-file)"
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeLock(f"lock file {path} is not a regular file: refusing it")
    return fd


def _open_peer(path: str) -> int | None:
    """Another user's lock file, read-only; None for anything that is no plain file we
    can read (nothing to check there)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def _lock(fd: int, path: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LockError(
            f"another glancesync run (pid {_holder(fd)}) holds {path}; wait for it to finish"
        ) from None


def _holder(fd: int) -> str:
    content = os.pread(fd, PID_WIDTH + 1, 0)
    text = content.strip().decode("ascii", "replace")
    return text if text.isdigit() else "unknown"


def _write_pid(fd: int, st: os.stat_result) -> None:
    """Our pid, for the message of the next run, only into a file that is a lock file of
    ours: empty, or holding nothing but a pid. Anything else is left as it is."""
    if st.st_uid != os.geteuid() or st.st_nlink != 1 or st.st_size > PID_WIDTH:
        return
    if not _PID_CONTENT.fullmatch(os.pread(fd, PID_WIDTH + 1, 0)):
        return
    os.pwrite(fd, f"{os.getpid()}".ljust(PID_WIDTH - 1).encode() + b"\n", 0)
