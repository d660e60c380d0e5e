"""User-facing errors: caught once in cli.main and printed as one line with an exit code."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REGION_FAILED = 1
EXIT_USAGE = 2
EXIT_NEEDS_OPERATOR = 3


class GlanceSyncError(Exception):
    """Base class; ``exit_code`` is what the process exits with when this escapes."""

    exit_code = EXIT_REGION_FAILED


class ConfigError(GlanceSyncError):
    """Bad configuration file, override, option or command line (exit 2)."""

    exit_code = EXIT_USAGE


class FacadeError(GlanceSyncError):
    """An operation on a region failed (API error, timeout, upload failure): the region fails."""


class LockError(GlanceSyncError):
    """Another glancesync run holds the lock."""

    exit_code = EXIT_REGION_FAILED
