"""User-facing errors: caught once in cli.main and printed as one line with an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REGION_FAILED = 1
EXIT_USAGE = 2
EXIT_NEEDS_OPERATOR = 3
EXIT_PENDING = 4  # --detailed-exitcode: a sync would change something
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a command killed by it


class GlanceSyncError(Exception):
    """Base class; ``exit_code`` is what the process exits with when this escapes."""

    exit_code = EXIT_REGION_FAILED


class ConfigError(GlanceSyncError):
    """Bad configuration file, override, option or command line (exit 2)."""

    exit_code = EXIT_USAGE


class FacadeError(GlanceSyncError):
    """An operation on a region failed (API error, timeout, upload failure): the region fails.

    ``transient``: a connection error, a timeout or a 502/503/504, which the same request
    may not meet again (an upload is then retried from its source).
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class BadInput(FacadeError):
    """A region's data cannot be read as it is (a malformed backup CSV): no retry can fix
    it, the operator must (exit 2). The other regions are still processed."""

    exit_code = EXIT_USAGE


class SourceMismatch(FacadeError):
    """The bytes read for an upload are not the master's (size or hashes differ)."""


class LockError(GlanceSyncError):
    """Another glancesync run holds the lock."""

    exit_code = EXIT_REGION_FAILED


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP: stop the run after cleaning up (like KeyboardInterrupt,
    it is no Exception, so no ``except Exception`` swallows it)."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(f"interrupted by {name}")
        self.signum = signum
        self.exit_code = 128 + signum
