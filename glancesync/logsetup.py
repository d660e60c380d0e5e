"""Where log lines go and what they look like; the CLI's logging state, set and restored.

Log lines (and errors) go to stderr, data (status CSV, JSON, the region list, a backup
directory) to stdout, so ``glancesync --show-status > status.csv`` keeps the two apart.

Every line is ``<local time, ms> LEVEL:message``: the part after the timestamp is the line
GlanceSync 1.7 printed, so a ``grep 'INFO:Burgos: Uploading image'`` written for it still
matches.

:func:`configured` restores the loggers it touched when the block ends: ``main()`` called
in-process (tests, an embedding program) leaves no handler bound to a closed stream and
no propagation switched off behind it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

LOGGER_NAME = "glancesync"
FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s:%(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# The HTTP libraries whose requests --debug shows (their secrets masked by Redactor).
HTTP_LOGGERS = ("keystoneauth", "glanceclient", "openstack", "urllib3")

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2


class Formatter(logging.Formatter):
    """``2026-12-02 00:36:12.345 INFO:Burgos: Image uploaded.`` (local time)."""

    def __init__(self) -> None:
        super().__init__(FORMAT, DATE_FORMAT)


# Secrets that HTTP debug logs can carry: tokens in headers, passwords and secrets in
# JSON bodies (a Keystone password or application-credential request), form fields.
_SECRET_PATTERNS = [
    (
        re.compile(r"((?:X-Auth-Token|X-Subject-Token|X-Service-Token)\s*[:=]\s*)"
                   r"(\{SHA256\}[0-9a-fA-F]+|[^\s\"',;}]+)", re.IGNORECASE),
        r"\1***",
    ),
    (
        re.compile(r"""(["'](?:password|secret|passcode|token|access_token|id_token|"""
                   r"""client_secret|application_credential_secret)["']\s*:\s*["'])"""
                   r"""([^"']*)(["'])""", re.IGNORECASE),
        r"\1***\3",
    ),
    (  # {"token": {"id": "..."}}: the v3 token auth method
        re.compile(r"""(["']token["']\s*:\s*\{\s*["']id["']\s*:\s*["'])([^"']*)""",
                   re.IGNORECASE),
        r"\1***",
    ),
    (
        re.compile(r"((?:^|[?&\s])(?:password|secret|token)=)([^&\s]+)", re.IGNORECASE),
        r"\1***",
    ),
]  # fmt: skip


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redactor(logging.Filter):
    """Masks tokens and passwords in every line a handler writes, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class StreamHandler(logging.StreamHandler):
    """A reader that went away (``| head -1``) silences the stream; the run goes on.

    A sync must not stop half-way because its log reader closed the pipe; the default
    handler would print a "Logging error" traceback for every later line instead.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, BrokenPipeError | OSError) and getattr(exc, "errno", None) in (
            errno.EPIPE,
            errno.EINVAL,
        ):
            self.setStream(open(os.devnull, "w"))  # noqa: SIM115 (lives as long as we do)
            return
        super().handleError(record)


@dataclass
class _Saved:
    handlers: list[logging.Handler]
    level: int
    propagate: bool
    disabled: bool


def _save(logger: logging.Logger) -> _Saved:
    return _Saved(list(logger.handlers), logger.level, logger.propagate, logger.disabled)


def _restore(logger: logging.Logger, saved: _Saved) -> None:
    for handler in logger.handlers:
        if handler not in saved.handlers:
            handler.close()
    logger.handlers[:] = saved.handlers
    logger.setLevel(saved.level)
    logger.propagate = saved.propagate
    logger.disabled = saved.disabled


def make_handler(stream: IO[str] | None = None, path: str | None = None) -> logging.Handler:
    handler: logging.Handler
    if path is not None:
        handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(Formatter())
    handler.addFilter(Redactor())
    return handler


def level_for(verbosity: int) -> int:
    if verbosity <= QUIET:
        return logging.WARNING
    return logging.DEBUG if verbosity >= VERBOSE else logging.INFO


@contextmanager
def configured(
    verbosity: int = NORMAL, log_file: str | None = None, stream: IO[str] | None = None
) -> Iterator[None]:
    """Log to ``stream`` (stderr) and ``log_file`` while the block runs.

    ``verbosity``: QUIET = warnings and errors only; NORMAL = INFO; VERBOSE = glancesync's
    own debug lines too; DEBUG = also the HTTP requests of keystoneauth and glanceclient,
    tokens and passwords masked.
    """
    names = [LOGGER_NAME, *HTTP_LOGGERS]
    loggers = [logging.getLogger(name) for name in names]
    saved = [_save(logger) for logger in loggers]
    try:
        handlers = [make_handler(stream)]
        if log_file:
            handlers.append(make_handler(path=log_file))
        level = level_for(verbosity)
        for handler in handlers:
            handler.setLevel(level)
        main = loggers[0]
        main.handlers[:] = handlers
        main.setLevel(level)
        main.propagate = False  # our format, once, whatever the root logger does
        main.disabled = False
        for logger in loggers[1:]:
            if verbosity >= DEBUG:
                logger.handlers[:] = handlers
                logger.setLevel(logging.DEBUG)
                logger.propagate = False
                logger.disabled = False
        yield
    finally:
        for logger, state in zip(loggers, saved, strict=True):
            _restore(logger, state)


def redirect_to_file(path: str) -> None:
    """In a --parallel child: this region's lines go to ``path`` instead of stderr.

    A --log-file handler stays (every region's lines also land in the one log file, each
    naming its region); the terminal gets nothing, so the children do not interleave.
    """
    main = logging.getLogger(LOGGER_NAME)
    current = list(main.handlers)
    shown = [main] + [
        logger
        for logger in map(logging.getLogger, HTTP_LOGGERS)
        if logger.handlers and logger.handlers == current  # --debug: shown as ours
    ]
    file_handler = make_handler(path=path)
    file_handler.setLevel(main.level or logging.INFO)
    kept = [h for h in current if isinstance(h, logging.FileHandler)]
    for logger in shown:
        logger.handlers[:] = [*kept, file_handler]


def quiet_broken_stdout() -> None:
    """stdout's reader went away: point stdout at /dev/null so the exit flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real fd (captured in tests)
        pass
