"""SIGINT, SIGTERM and SIGHUP stop a run the same way (Ctrl-C, systemd stop, `timeout`,
a dropped SSH session).

The first signal raises :class:`Interrupted` where the run is: the executor then deletes
the copy in flight or finishes/undoes the swap in progress, the lock is released, and the
process exits with 128 + the signal number (130, 143, 129). Further signals while that
clean-up runs are only logged: a second Ctrl-C must not cut the clean-up short.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from glancesync.exceptions import Interrupted

log = logging.getLogger("glancesync")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within this block (main thread only), the signals above raise Interrupted once."""
    stopping = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        name = signal.Signals(signum).name
        if stopping:
            log.warning(f"{name} received: already stopping, cleaning up first")
            return
        stopping = True
        raise Interrupted(signum, name)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_deferred() -> Iterator[set[signal.Signals]]:
    """Within this block (main thread), the signals above wait; they are delivered, and
    under stop_on_signals raise, right after it. For output that must be written whole
    (a region's status lines), even to a reader that is slow to read it, and for forks
    (a child sets its own handling first). Gives the signal mask as it was before."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield previous
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class StopToken:
    """Carries an interruption from the main thread to the threads of a run.

    Signals are delivered to the main thread only; the threads that upload to the regions
    call :meth:`check` between operations and between chunks, and stop there the same
    way (Interrupted, then the clean-up of what they had in flight).
    """

    def __init__(self) -> None:
        self._signal: tuple[int, str] | None = None
        self._event = threading.Event()

    def stop(self, exc: Interrupted) -> None:
        self._signal = (exc.signum, signal.Signals(exc.signum).name)
        self._event.set()

    def sleep(self, seconds: float) -> None:
        """time.sleep that an interruption cuts short (a retry's backoff, up to 30 s)."""
        self._event.wait(seconds)
        self.check()

    @property
    def stopping(self) -> bool:
        return self._signal is not None

    def check(self) -> None:
        if self._signal is not None:
            raise Interrupted(*self._signal)
