"""argv -> options, facades, dispatch, exit codes. The only place errors become output."""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import io
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from glancesync import __version__, lock, logsetup, report
from glancesync.config import Settings, load_settings, validate_credentials
from glancesync.exceptions import (
    EXIT_BROKEN_PIPE,
    EXIT_OK,
    EXIT_PENDING,
    EXIT_REGION_FAILED,
    EXIT_USAGE,
    ConfigError,
    GlanceSyncError,
    Interrupted,
)
from glancesync.facade.base import Facade
from glancesync.interrupt import signals_deferred, stop_on_signals
from glancesync.runner import RegionRef, Runner
from glancesync.status import RegionStatus

log = logging.getLogger("glancesync")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glancesync",
        description="A tool to sync images from a master region to other regions",
    )
    parser.add_argument(
        "regions",
        nargs="*",
        metavar="region",
        help="region where the images are uploaded to (REGION, target:REGION, or target: "
        "for all the regions of a target)",
    )
    parser.add_argument("--parallel", action="store_true", help="sync several regions in parallel")
    parser.add_argument(
        "--config",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override configuration options (e.g. main.master_region=Valladolid "
        "\"metadata_condition=image.name=='name1'\")",
    )
    parser.add_argument(
        "--config-file",
        metavar="FILE",
        help="configuration file (default: $GLANCESYNC_CONFIG, else /etc/glancesync.conf)",
    )
    parser.add_argument(
        "--os-cloud",
        metavar="NAME",
        help="authenticate the master target as cloud NAME of clouds.yaml, instead of the "
        "credentials of the configuration file (without them: env OS_CLOUD, else the OS_* "
        "variables)",
    )
    parser.add_argument(
        "--offline",
        metavar="DIR",
        default=os.environ.get("GLANCESYNC_OFFLINE_DIR"),
        help="use the backup_<region>.csv files in DIR as the regions (no cloud is "
        "contacted; env GLANCESYNC_OFFLINE_DIR)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="do not upload actually the images")
    mode.add_argument(
        "--show-status",
        action="store_true",
        help="do not sync, but show the synchronisation status",
    )
    mode.add_argument(
        "--show-regions", action="store_true", help="do not sync, only show the available regions"
    )
    mode.add_argument(
        "--make-backups",
        "--make-backup",
        dest="make_backups",
        action="store_true",
        help="do not sync, make a backup of the regions' metadata",
    )
    parser.add_argument(
        "--format",
        choices=("csv", "json"),
        default="csv",
        help="what goes to stdout. csv (default): the --show-status lines "
        "status,region,image, the --show-regions line, the --make-backups directory; a "
        "sync prints only log lines (stderr). json: one JSON document for every mode "
        "(status, regions, backup, and the run report of a sync or --dry-run: what was or "
        "would be done, per region and in total)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="after a sync or --dry-run, write its JSON run report to FILE (replaced "
        "atomically), for cron jobs and monitoring",
    )
    parser.add_argument(
        "--metrics-file",
        metavar="FILE",
        help="after a sync, write Prometheus metrics to FILE (replaced atomically; e.g. "
        "node_exporter's textfile directory, FILE ending in .prom): last success time, "
        "per-region results, bytes, durations",
    )
    parser.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help=f"with --show-status or --dry-run: exit {EXIT_PENDING} when a sync would "
        "change something (0: nothing to do, 1: a region failed, 3: nothing to do but "
        "images need the operator)",
    )
    parser.add_argument(
        "--lock-file",
        metavar="FILE",
        default=os.environ.get("GLANCESYNC_LOCK_FILE"),
        help="lock held during a sync so that two runs never overlap",
    )
    logs = parser.add_argument_group("logging (log lines and errors go to stderr)")
    logs.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more detail: -v adds glancesync's debug lines, -vv is --debug",
    )
    logs.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors"
    )
    logs.add_argument(
        "--debug",
        action="store_true",
        help="also log the HTTP requests to Keystone and Glance (tokens and passwords "
        "masked)",
    )
    logs.add_argument(
        "--log-file", metavar="FILE", help="also append the log lines to FILE"
    )
    logs.add_argument(
        "--log-dir",
        metavar="DIR",
        default=".",
        help="with --parallel: where the directory of per-region log files is created "
        "(default: the current directory)",
    )
    parser.add_argument(
        "--backup-dir",
        metavar="DIR",
        default=".",
        help="with --make-backups: where the backup directory is created (default: the "
        "current directory)",
    )
    parser.add_argument("--version", action="version", version=f"glancesync {__version__}")
    return parser


def console_main() -> NoReturn:
    """The ``glancesync`` command (and ``python -m glancesync``): ``main()``, then the
    process ends at once.

    When main() returns, everything is written: its log handlers are closed, and what is
    still buffered is flushed here. The interpreter's own teardown would then only free,
    one by one, every object still alive: about a tenth of a second after a status over
    big regions. (Tests call main(), which returns.)
    """
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        sys.exit(code)  # the interpreter's exit reports it, as for any program
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `--config` takes several values: region names typed after it land there (no '=').
    args.after_config = [token for token in args.config if "=" not in token]
    args.regions += args.after_config
    args.config = [token for token in args.config if "=" in token]
    verbosity = logsetup.QUIET if args.quiet else min(args.verbose, logsetup.DEBUG)
    if args.debug:
        verbosity = logsetup.DEBUG
    try:
        with logsetup.configured(verbosity, args.log_file), _fewer_gc_passes():
            return _main(args)
    except OSError as exc:  # the --log-file cannot be opened
        print(f"ERROR:cannot open the log file {args.log_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Run the cycle collector less often during the run (restored afterwards).

    A run over big regions keeps hundreds of thousands of small objects alive (images,
    their rows and plans); with the default thresholds the collector walks them again
    and again, about a third of a --show-status over twenty 10,000-image regions. The
    engine makes few reference cycles, so collecting less often costs little memory.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], 50_000), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _main(args: argparse.Namespace) -> int:
    try:
        check_options(args)
        with stop_on_signals():
            code = run(args)
        sys.stdout.flush()  # here, where a closed pipe is handled, not at exit
        return code
    except GlanceSyncError as exc:
        log.error(str(exc))
        return exc.exit_code
    except Interrupted as exc:
        log.error(f"{exc}: the operation in progress was cleaned up; rerun to finish")
        return exc.exit_code
    except KeyboardInterrupt:  # outside the handled block (e.g. while importing)
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`| head -1`): what it wanted, it has.
        logsetup.quiet_broken_stdout()
        return EXIT_BROKEN_PIPE


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config_file, args.config, os_cloud=args.os_cloud)
    writes = _writes(args)
    # A sync holds the lock from before its first request: two runs of one configuration
    # never overlap, even while one is still authenticating (a dry run writes nothing).
    with lock_for(args, settings) if writes else contextlib.nullcontext():
        return _run(args, settings)


def _writes(args: argparse.Namespace) -> bool:
    """A sync; dry runs, statuses, region lists and backups write to no region."""
    return not (args.dry_run or args.show_status or args.show_regions or args.make_backups)


def check_options(args: argparse.Namespace) -> None:
    """Options that mean nothing in the chosen mode are refused, not silently ignored."""
    sync = not (args.show_status or args.show_regions or args.make_backups)
    if args.detailed_exitcode and not (args.show_status or args.dry_run):
        raise ConfigError("--detailed-exitcode applies to --show-status and --dry-run only")
    if args.report and not sync:
        raise ConfigError("--report applies to a sync or a --dry-run only")
    if args.metrics_file and not (sync and not args.dry_run):
        raise ConfigError(
            "--metrics-file applies to a sync only (a dry run or a status is no sync: it "
            "would overwrite the last sync's metrics)"
        )


def _regions(args: argparse.Namespace, compute):
    try:
        return compute(args.regions)
    except ConfigError as exc:
        if not args.after_config:
            raise
        raise ConfigError(
            f"{exc} ({' '.join(args.after_config)}: typed after --config, which expects "
            "KEY=VALUE; put regions first, or after --)"
        ) from None


def _run(args: argparse.Namespace, settings: Settings) -> int:
    runner = Runner(settings, facade_factory(settings, args.offline, read_only=not _writes(args)))
    if args.show_regions:
        in_run, others = _regions(args, runner.show_regions)
        if args.format == "json":
            document = {
                "kind": "regions",
                "master_region": settings.master_region,
                "regions": in_run,
                "other_regions": others,
            }
            sys.stdout.write(report.dumps(document))
        else:
            print(" ".join(in_run), flush=True)
        return EXIT_REGION_FAILED if runner.failed_targets else EXIT_OK
    refs = _regions(args, runner.region_list)
    if args.show_status:
        if args.format == "json":
            statuses: list[RegionStatus] = []
            pending, code = runner.status(refs, statuses.append)
            _write_whole(report.dumps(status_document(statuses, pending)))
        else:
            pending, code = runner.status(refs, write_status_lines)
        if args.detailed_exitcode and pending and code != EXIT_REGION_FAILED:
            return EXIT_PENDING
        return code
    if args.make_backups:
        code = runner.make_backups(refs, args.backup_dir)
        if args.format == "json":
            document = {"kind": "backup", "directory": runner.backup_dir, "exit_code": code}
            sys.stdout.write(report.dumps(document))
        elif runner.backup_dir:
            print(runner.backup_dir, flush=True)  # a script can `cd "$(glancesync ...)"`
        return code
    if args.parallel:

        def sync(refs: list[RegionRef], dry_run: bool) -> int:
            return runner.sync_parallel(refs, dry_run, args.log_dir)

    else:
        sync = runner.sync
    code, error = EXIT_REGION_FAILED, None
    try:
        code = sync(refs, args.dry_run)
        if args.detailed_exitcode and code != EXIT_REGION_FAILED and runner.last_run:
            if any(result.has_work for result in runner.last_run.results):
                code = EXIT_PENDING
        return code
    except (GlanceSyncError, Interrupted) as exc:
        code, error = exc.exit_code, str(exc)
        raise
    finally:
        runner.close()
        if runner.last_run is not None:
            write_outputs(args, runner.last_run, code, error)


def write_outputs(args: argparse.Namespace, run: report.Run, code: int, error: str | None) -> None:
    """The run report (stdout with --format json, --report) and the metrics file."""
    run.exit_code = code
    run.error = error
    run.finished = run.finished or time.time()
    document = report.run_report(run)
    for path, text, what in (
        (args.report, lambda: report.dumps(document), "report"),
        (args.metrics_file, lambda: report.metrics_text(run, report.previous_success(
            args.metrics_file)), "metrics file"),
    ):
        if not path:
            continue
        try:
            report.write_atomic(path, text())
        except OSError as exc:
            log.error(f"cannot write the {what} {path}: {exc.strerror or exc}")
            continue
        log.info(f"Wrote the {what} {os.path.abspath(path)}")
    if args.format == "json":  # last: a closed stdout must not cost the files above
        sys.stdout.write(report.dumps(document))
        sys.stdout.flush()


def facade_factory(settings: Settings, offline_dir: str | None, read_only: bool = False):
    """target name -> its facade; ``read_only``: offline regions refuse every write."""

    def make(target_name: str) -> Facade:
        target = settings.targets[target_name]
        if offline_dir:
            from glancesync.facade.offline import OfflineFacade

            return OfflineFacade.for_target(target, offline_dir, read_only)
        from glancesync.facade.openstack import OpenStackFacade

        credentials = validate_credentials(settings, target)
        return OpenStackFacade(
            target_name,
            credentials,
            target.list_images_timeout,
            retries=target.retries,
            transfer_timeout=target.transfer_timeout,
        )

    return make


def status_document(statuses: list[RegionStatus], pending: bool) -> dict[str, Any]:
    rows = [
        {
            "status": s.status,
            "region": region.region,
            "image": s.image,
            "size": s.size,
            "master_id": s.master_id,
            "dest_id": s.dest_id,
            "changes": list(s.changes),
            "problem": s.problem or None,
        }
        for region in statuses
        for s in region.images
    ]
    obsolete = [
        {"region": region.region, "image": name, "new_name": new_name}
        for region in statuses
        for name, new_name in region.obsolete
    ]
    return {"kind": "status", "images": rows, "obsolete": obsolete, "pending": pending}


def write_status_lines(region: RegionStatus) -> None:
    """One region's status,region,image lines, as csv writes them, built directly: a
    status over many regions prints hundreds of thousands of lines, and names rarely
    need quoting."""
    name = _csv_field(region.region)
    images = region.names
    if _NEEDS_QUOTES.search("|".join(images)):
        images = [_csv_field(image) for image in images]
    lines = zip(region.statuses, images, strict=True)
    _write_whole("".join([f"{status},{name},{image}\n" for status, image in lines]))


def _write_whole(text: str) -> None:
    """Write ``text`` to stdout whole: an interruption waits until it is written (a
    status stops between two regions), even by a reader slow to read it."""
    with signals_deferred():
        sys.stdout.write(text)
        sys.stdout.flush()


def _csv_field(text: str) -> str:
    """``text`` as csv.writer writes one field of several (minimal quoting)."""
    if not _NEEDS_QUOTES.search(text):
        return text
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([text, ""])
    return out.getvalue()[: -len(",\n")]


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def lock_for(args: argparse.Namespace, settings: Settings) -> contextlib.AbstractContextManager:
    if args.lock_file:
        return lock.hold(args.lock_file)
    path = lock.default_lock_path(settings, args.offline)
    if args.offline:  # the directory's own lock
        return lock.hold(path)
    return lock.hold(path, lambda: lock.peer_paths(path))


if __name__ == "__main__":
    console_main()
