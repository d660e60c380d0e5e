"""``glancesync-api``: serve the REST API with uvicorn (access log, graceful SIGTERM).

Only the standard library and glancesync's core are imported before the extras are
checked, so a plain install answers with the pip command instead of a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import logging
import os
import signal
import sys

from glancesync import __version__
from glancesync.exceptions import EXIT_USAGE, GlanceSyncError

log = logging.getLogger("glancesync.api")

EXTRAS = ("fastapi", "uvicorn", "sqlalchemy")
DEFAULT_PORT = 8080
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glancesync-api",
        description="Serve glancesync's REST API: region statuses and sync tasks "
        "(Keystone-authenticated; OpenAPI document at /openapi.json, browsable at /docs)",
    )
    parser.add_argument(
        "--config-file",
        metavar="FILE",
        help="glancesync configuration file (default: $GLANCESYNC_CONFIG, else "
        "/etc/glancesync.conf)",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override configuration options, as the glancesync command does",
    )
    parser.add_argument(
        "--offline",
        metavar="DIR",
        default=os.environ.get("GLANCESYNC_OFFLINE_DIR"),
        help="use the backup_<region>.csv files in DIR as the regions (env GLANCESYNC_OFFLINE_DIR)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on ({DEFAULT_PORT})"
    )
    parser.add_argument("--workers", type=_positive, default=1, help="server processes (default 1)")
    parser.add_argument(
        "--database",
        metavar="URL",
        default=os.environ.get("GLANCESYNC_API_DATABASE"),
        help="SQLAlchemy URL of the task database, e.g. "
        "postgresql+psycopg://user:password@host/glancesync (env GLANCESYNC_API_DATABASE; "
        "default: an SQLite file in --state-dir)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="directory of the default SQLite database (default: $STATE_DIRECTORY, else "
        "$XDG_STATE_HOME/glancesync, else ~/.local/state/glancesync)",
    )
    parser.add_argument(
        "--role", default="admin", help="Keystone role a token needs (default admin)"
    )
    parser.add_argument(
        "--auth-cloud",
        metavar="NAME",
        default=os.environ.get("GLANCESYNC_API_AUTH_CLOUD"),
        help="clouds.yaml entry whose user validates tokens (it needs the 'service' or "
        "'admin' role); default: the [master] credentials (env GLANCESYNC_API_AUTH_CLOUD)",
    )
    parser.add_argument(
        "--auth-strategy",
        choices=("keystone", "noauth"),
        default="keystone",
        help="noauth: accept every request without a token (tests and benchmarks only)",
    )
    parser.add_argument(
        "--max-tasks",
        type=_positive,
        default=2,
        help="regions synchronised at the same time by one server process (default 2)",
    )
    parser.add_argument(
        "--token-cache-ttl",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a token validation is reused (default 300)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="on SIGTERM, how long running tasks get to clean up (default 60)",
    )
    parser.add_argument(
        "--lock-file",
        metavar="FILE",
        default=os.environ.get("GLANCESYNC_LOCK_FILE"),
        help="the lock file glancesync runs of this configuration use, if not the default "
        "(a task holds it while it runs, so that a cron run and a task never overlap)",
    )
    parser.add_argument("--version", action="version", version=f"glancesync-api {__version__}")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number >= 1")
    return value


def missing_extras() -> list[str]:
    return [name for name in EXTRAS if importlib.util.find_spec(name) is None]


def log_config() -> dict:
    """Timestamps on every line, to stderr: uvicorn's own, its access log, the engine's."""
    handler = {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": LOG_FORMAT}},
        "handlers": {"stderr": handler},
        "loggers": {
            name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
            for name in ("uvicorn", "uvicorn.access", "glancesync")
        },
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = missing_extras()
    if missing:
        print(
            f"glancesync-api: the API needs packages that are not installed ({', '.join(missing)}):"
            " pip install 'glancesync[api]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import logging.config

    logging.config.dictConfig(log_config())
    try:
        return serve(args)
    except GlanceSyncError as exc:
        log.error(str(exc))
        return exc.exit_code


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from glancesync.api.app import OPTIONS_ENV, create_app
    from glancesync.api.db import default_url, redact
    from glancesync.api.service import Options, build_service

    database = args.database or default_url(
        None if args.state_dir is None else __import__("pathlib").Path(args.state_dir)
    )
    options = Options(
        config_file=args.config_file,
        overrides=tuple(args.config),
        offline=args.offline,
        database=database,
        role=args.role,
        auth=args.auth_strategy,
        auth_cloud=args.auth_cloud,
        max_tasks=args.max_tasks,
        token_cache_ttl=args.token_cache_ttl,
        shutdown_timeout=args.shutdown_timeout,
        lock_file=args.lock_file,
    )
    # Configuration and database are checked here, once, so that a mistake is one line
    # and exit code 2 instead of a failing server process.
    service = build_service(options)
    service.store.create_schema()
    if options.auth == "noauth":
        log.warning("--auth-strategy noauth: every request is accepted without a token")
    log.info(
        f"glancesync-api {__version__} on http://{args.host}:{args.port} "
        f"(database {redact(database)}, {args.workers} worker(s), role {options.role})"
    )
    common = {
        "host": args.host,
        "port": args.port,
        "log_config": log_config(),
        "access_log": True,
        # requests in flight get a few seconds; the tasks get --shutdown-timeout after that
        "timeout_graceful_shutdown": min(max(options.shutdown_timeout, 1), 10),
        "server_header": False,
    }
    if args.workers == 1:
        config = uvicorn.Config(create_app(options, service), **common)
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again
        # under the handler it found: with this one there, a clean stop exits 0.
        received: list[int] = []
        stop_signals = (signal.SIGTERM, signal.SIGINT)
        previous = {
            sig: signal.signal(sig, lambda n, _f: received.append(n)) for sig in stop_signals
        }
        try:
            uvicorn.Server(config).run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if received:
            log.info(f"stopped by {signal.Signals(received[0]).name}")
        return 0
    service.store.engine.dispose()
    os.environ[OPTIONS_ENV] = json.dumps(dataclasses.asdict(options))
    uvicorn.run(
        "glancesync.api.app:app_from_environment", factory=True, workers=args.workers, **common
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
