"""One region after another, or forked children (--parallel, max_children).

The Runner owns the facades (one per target), lists the master region once per run,
builds the region list from the command line and runs the per-region jobs: plan +
execute, status report, backup.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from glancesync import backup, logsetup, marker, report
from glancesync.config import Settings
from glancesync.exceptions import (
    EXIT_NEEDS_OPERATOR,
    EXIT_OK,
    EXIT_REGION_FAILED,
    EXIT_USAGE,
    ConfigError,
    FacadeError,
    GlanceSyncError,
    Interrupted,
)
from glancesync.executor import Executor, RegionResult
from glancesync.facade.base import Facade, region_fullname
from glancesync.image import Image
from glancesync.plan import RegionPlan, plan_region
from glancesync.report import Run
from glancesync.selection import master_images
from glancesync.transfer import source_for

log = logging.getLogger("glancesync")

FacadeFactory = Callable[[str], Facade]  # target name -> facade


@dataclass(frozen=True)
class RegionRef:
    target: str
    region: str

    @property
    def fullname(self) -> str:
        return region_fullname(self.target, self.region)


def exit_code(results: list[RegionResult]) -> int:
    if any(r.failed and r.exit_code == EXIT_USAGE for r in results):
        return EXIT_USAGE  # the operator must fix something first: retrying cannot
    if any(r.failed for r in results):
        return EXIT_REGION_FAILED
    if any(r.needs_operator for r in results):
        return EXIT_NEEDS_OPERATOR
    return EXIT_OK


class Runner:
    def __init__(self, settings: Settings, make_facade: FacadeFactory) -> None:
        self.settings = settings
        self._make_facade = make_facade
        self._facades: dict[str, Facade] = {}
        self._master: dict[str, Image] | None = None
        self._run: marker.RunId | None = None
        # Targets whose Keystone refused us or whose catalog could not be read: their
        # regions are skipped (and count as failed), the other targets go on.
        self.failed_targets: dict[str, str] = {}
        self.backup_dir: str | None = None  # made by make_backups
        self.last_run: Run | None = None  # the last sync or dry run (summary, report, metrics)

    @property
    def master_ref(self) -> RegionRef:
        return RegionRef("master", self.settings.master_region)

    # -- facades and the master listing ---------------------------------------------
    def facade(self, target: str) -> Facade:
        if target not in self._facades:
            self._facades[target] = self._make_facade(target)
        return self._facades[target]

    def master(self) -> dict[str, Image]:
        """The master dict, listed once per run (SPEC §5.1)."""
        if self._master is None:
            facade = self.facade("master")
            region = self.settings.master_region
            available = facade.regions()
            if region not in available:  # no retry can fix a wrong name
                raise ConfigError(
                    f"unknown master_region '{region}': the master target has the regions "
                    f"{', '.join(available) or 'none'} (set master_region in [main], or "
                    "OS_REGION_NAME)"
                )
            images = facade.list_images(region)
            log.debug(f"{region}: {len(images)} images in the master region")
            forced = frozenset().union(*(t.forcesyncs for t in self.settings.targets.values()))
            self._master, warnings = master_images(images, facade.tenant_id(), forced)
            for warning in warnings:
                log.warning(warning)
        return self._master

    # -- region list (SPEC §3.3) ----------------------------------------------------
    def target_regions(self, target: str) -> list[RegionRef]:
        config = self.settings.targets[target]
        available = self._available_regions(target)
        refs = [RegionRef(target, region) for region in available or ()]
        return [
            ref
            for ref in refs
            if ref.region not in config.ignore_regions and ref != self.master_ref
        ]

    def _available_regions(self, target: str) -> list[str] | None:
        """The target's regions; None when the target cannot be reached (it is recorded in
        ``failed_targets`` and logged once). The master's own target is needed by every
        region, so its failure stops the run."""
        if target in self.failed_targets:
            return None
        try:
            return self.facade(target).regions()
        except FacadeError as exc:
            if target == "master":
                raise
            self.failed_targets[target] = str(exc)
            log.error(f"{exc} (the regions of target {target} are skipped; the others go on)")
            return None

    def region_list(self, args: list[str]) -> list[RegionRef]:
        refs: list[RegionRef] = []
        computed = not args
        for arg in args:
            target, sep, region = arg.rpartition(":")
            target = target if sep else "master"
            self.settings.get_target(target)  # ConfigError naming the known targets
            if not region:
                refs += self.target_regions(target)
                computed = True
                continue
            available = self._available_regions(target)
            if available is None:
                continue
            if region not in available:
                raise ConfigError(
                    f"unknown region '{region}' in target {target} "
                    f"(its regions: {', '.join(available) or 'none'})"
                )
            refs.append(RegionRef(target, region))
        if not args:
            refs = self.target_regions("master") + self._preferred_elsewhere()
        if computed:
            refs = preferable_order(refs, self.settings.preferable_order)
        return list(dict.fromkeys(refs))  # a region named twice is synced once

    def _preferred_elsewhere(self) -> list[RegionRef]:
        """Regions of other targets that ``preferable_order`` names: a run without
        arguments syncs them too (they are in the list on purpose)."""
        refs = []
        for entry in self.settings.preferable_order:
            target, sep, region = entry.rpartition(":")
            if not sep or target == "master":
                continue
            if target not in self.settings.targets:
                log.warning(f"preferable_order names {entry}, but there is no target {target}")
                continue
            found = [ref for ref in self.target_regions(target) if ref.region == region]
            if not found and target not in self.failed_targets:
                log.warning(
                    f"preferable_order names {entry}, which is not a region of target "
                    f"{target} (or is in its ignore_regions)"
                )
            refs += found
        return refs

    def target_results(self) -> list[RegionResult]:
        """One failed result per unreachable target (its regions could not even be named)."""
        return [
            RegionResult(f"{target}:", failed=True, error=error)
            for target, error in self.failed_targets.items()
        ]

    def show_regions(self, args: list[str] | None = None) -> tuple[list[str], list[str]]:
        """The regions a run with these region arguments syncs, in its order; and the
        other regions of every target (which ``target:`` on the command line adds)."""
        run = self.region_list(list(args or []))
        others = [
            ref
            for target in self.settings.targets
            for ref in self.target_regions(target)
            if ref not in run
        ]
        return [ref.fullname for ref in run], [ref.fullname for ref in others]

    # -- per-region jobs --------------------------------------------------------------
    def plan(self, ref: RegionRef) -> RegionPlan:
        facade = self.facade(ref.target)
        target = self.settings.targets[ref.target]
        images = facade.list_images(ref.region)
        log.debug(f"{ref.fullname}: {len(images)} images listed")
        return plan_region(
            ref.fullname,
            self.master(),
            images,
            target,
            facade.tenant_id(),
            # Named as a destination, the master reports its statuses; nothing is ever
            # written there (its own _obsolete pairs must never rename master images).
            is_master=ref == self.master_ref,
            is_leftover=marker.is_leftover,
        )

    def sync_region(self, ref: RegionRef, dry_run: bool) -> RegionResult:
        start = time.monotonic()
        try:
            try:
                result = self._sync_region(ref, dry_run)
            finally:
                # Changes a facade holds back (offline files) are written when the region
                # ends, failed or interrupted too: what was done is recorded.
                self._flush(ref)
        except FacadeError as exc:
            log.error(str(exc))
            result = RegionResult(ref.fullname, failed=True, error=str(exc))
            result.exit_code = exc.exit_code
        except GlanceSyncError:
            raise
        except Exception as exc:  # a bug: fail this region loudly, go on with the next
            log.exception(f"{ref.fullname}: unexpected error: {exc!r}")
            result = RegionResult(ref.fullname, failed=True, error=f"unexpected error: {exc!r}")
        result.elapsed = time.monotonic() - start
        return result

    def _sync_region(self, ref: RegionRef, dry_run: bool) -> RegionResult:
        plan = self.plan(ref)
        master_facade = self.facade("master")

        def source(master: Image):
            return source_for(
                master, self.settings.images_dir, master_facade, self.settings.master_region
            )

        facade = self.facade(ref.target)
        target = self.settings.targets[ref.target]
        executor = Executor(
            facade, ref.region, target, plan, source, dry_run, self._run_id(), target.retries
        )
        return executor.run()

    def _run_id(self) -> marker.RunId:
        """This run's identity, marked on its temporary copies (one per process)."""
        if self._run is None or self._run.pid != os.getpid():
            self._run = marker.start_run()
        return self._run

    def _flush(self, ref: RegionRef) -> None:
        facade = self._facades.get(ref.target)  # None: creating it failed, nothing changed
        if facade is not None:
            facade.flush(ref.region)

    def close(self) -> None:
        """The run is over: its temporary copies, if any were left, are leftovers now."""
        try:
            for facade in list(self._facades.values()):
                facade.flush()  # what a caller changed outside a region's sync
        finally:
            if self._run is not None:
                marker.end_run(self._run)
                self._run = None

    def _start_run(self, dry_run: bool) -> Run:
        self.last_run = Run(dry_run, self.settings.master_region)
        return self.last_run

    def _finish_run(self, run: Run) -> int:
        run.results += self.target_results()
        run.exit_code = exit_code(run.results)
        run.finished = time.time()
        report.log_summary(run)
        return run.exit_code

    def sync(self, refs: list[RegionRef], dry_run: bool) -> int:
        run = self._start_run(dry_run)
        self.master()  # a master that cannot be listed stops the run here
        log.info(f"======Master is {self.settings.master_region}")
        for ref in refs:
            log.info(f"======{ref.fullname}")
            run.results.append(self.sync_region(ref, dry_run))
        return self._finish_run(run)

    def sync_parallel(self, refs: list[RegionRef], dry_run: bool, base: str = ".") -> int:
        run = self._start_run(dry_run)
        self.master()  # listed once, inherited by the children
        logdir = _unique_dir(os.path.join(base, datetime.now().strftime("sync_%Y%m%d_%H%M%S")))
        run.log_dir = os.path.abspath(logdir)
        log.info(f"======Master is {self.settings.master_region}")
        log.info(f"Log files of the regions: {run.log_dir}")
        running: dict[int, RegionRef] = {}
        codes: dict[RegionRef, int] = {}
        # Each child writes its RegionResult there as JSON: the parent's summary, report
        # and metrics need them, and a file cannot block a child like a full pipe can.
        results_dir = tempfile.mkdtemp(prefix="glancesync-results-")

        def result_path(ref: RegionRef) -> str:
            return os.path.join(results_dir, f"{refs.index(ref)}.json")

        def wait() -> None:
            ref, code = self._wait_child(running)
            codes[ref] = code

        try:
            for ref in refs:
                while len(running) >= self.settings.max_children:
                    wait()
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:  # child
                    os._exit(self._child(ref, dry_run, logdir, result_path(ref)))
                running[pid] = ref
            while running:
                wait()
        except Interrupted as exc:
            # Children clean up their own copy in flight: tell them (a plain `kill` of
            # this process reaches no child) and wait until each one has.
            for pid in running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, exc.signum)
            while running:
                wait()
            run.results = [_child_result(ref, codes, result_path(ref)) for ref in codes]
            raise
        finally:
            if not running:
                run.results = [_child_result(ref, codes, result_path(ref)) for ref in codes]
                run.results.sort(key=lambda r: _index(refs, r.region))
                shutil.rmtree(results_dir, ignore_errors=True)
        log.info("All is done.")
        return self._finish_run(run)

    def _child(self, ref: RegionRef, dry_run: bool, logdir: str, result_path: str) -> int:
        try:
            # Connections of the parent must not be shared: new facades in the child.
            self._facades.clear()
            logsetup.redirect_to_file(os.path.join(logdir, f"{ref.fullname}.txt"))
            result = self.sync_region(ref, dry_run)
            with open(result_path, "w", encoding="utf-8") as f:
                json.dump(result.to_dict(), f)
            return exit_code([result])
        except GlanceSyncError as exc:
            log.error(str(exc))
            return exc.exit_code
        except Interrupted as exc:
            log.error(f"{ref.fullname}: {exc}; the operation in progress was cleaned up")
            return exc.exit_code
        except BaseException as exc:  # the parent reports the failure
            log.error(f"{ref.fullname}: stopped: {exc!r}")
            return EXIT_REGION_FAILED
        finally:
            self.close()

    @staticmethod
    def _wait_child(running: dict[int, RegionRef]) -> tuple[RegionRef, int]:
        while True:
            pid, status = os.wait()
            if pid in running:
                break
        ref = running.pop(pid)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else EXIT_REGION_FAILED
        suffix = {EXIT_OK: "", EXIT_NEEDS_OPERATOR: " (some images need the operator)"}.get(
            code, " with errors"
        )
        log.info(f"Region {ref.fullname} has finished{suffix}")
        return ref, code

    def status(self, refs: list[RegionRef]) -> tuple[list[RegionPlan], int]:
        self.master()
        plans, failed = [], EXIT_OK
        for ref in refs:
            try:
                plans.append(self.plan(ref))
            except FacadeError as exc:
                log.error(str(exc))
                failed = max(failed, exc.exit_code, key=_severity)
        for plan in plans:
            for warning in plan.warnings:
                log.warning(warning)
        if failed or self.failed_targets:
            return plans, max(failed, EXIT_REGION_FAILED, key=_severity)
        return plans, EXIT_NEEDS_OPERATOR if any(p.needs_operator for p in plans) else EXIT_OK

    def make_backups(self, refs: list[RegionRef], base: str = ".") -> int:
        directory = backup.make_backup_dir(base)
        refs = [self.master_ref] + [r for r in refs if r != self.master_ref]
        failed = bool(self.failed_targets)
        tenants = {}
        for target in dict.fromkeys(ref.target for ref in refs):
            try:
                tenants[target] = self.facade(target).tenant_id()
            except FacadeError as exc:
                log.error(f"tenant id of target {target} not recorded: {exc}")
                failed = True
        try:
            backup.write_tenants(directory, tenants)
        except FacadeError as exc:
            log.error(f"tenant ids not recorded: {exc}")
            failed = True
        for ref in refs:
            try:
                images = self.facade(ref.target).list_images(ref.region)
            except FacadeError as exc:
                log.error(f"{ref.fullname}:Error retrieving images from region. Cause {exc}")  # 1.7
                failed = True
                continue
            try:
                backup.write_backup(directory, ref.fullname, images)
            except FacadeError as exc:
                log.error(f"{ref.fullname}: backup not written: {exc}")
                failed = True
                continue
            log.info(f"Backup of region {ref.fullname}")
        self.backup_dir = os.path.abspath(directory)
        log.info(f"Backup directory: {self.backup_dir}")
        return EXIT_REGION_FAILED if failed else EXIT_OK


def preferable_order(refs: list[RegionRef], order: tuple[str, ...]) -> list[RegionRef]:
    """Entries of ``preferable_order`` first, in that order; then the rest as they were."""
    rest = list(refs)
    first = []
    for wanted in order:
        for ref in rest:
            if ref.fullname == wanted:
                first.append(ref)
                rest.remove(ref)
                break
    return first + rest


def _child_result(ref: RegionRef, codes: dict[RegionRef, int], path: str) -> RegionResult:
    """What a --parallel child reported; a child that died before it could say (killed,
    a crash) is a failed region with its exit status as the error."""
    try:
        with open(path, encoding="utf-8") as f:
            return RegionResult.from_dict(json.load(f))
    except (OSError, ValueError, TypeError):
        code = codes.get(ref, EXIT_REGION_FAILED)
        return RegionResult(
            ref.fullname,
            failed=True,
            interrupted=code > 128,
            error=f"its process ended with exit code {code} before reporting",
        )


def _index(refs: list[RegionRef], fullname: str) -> int:
    names = [ref.fullname for ref in refs]
    return names.index(fullname) if fullname in names else len(names)


def _severity(code: int) -> int:
    return {EXIT_OK: 0, EXIT_NEEDS_OPERATOR: 1, EXIT_USAGE: 3}.get(code, 2)


def _unique_dir(path: str) -> str:
    candidate, n = path, 1
    while True:
        try:
            os.makedirs(candidate)
            return candidate
        except FileExistsError:
            n += 1
            candidate = f"{path}_{n}"
        except OSError as exc:
            raise GlanceSyncError(
                f"cannot create the log directory {candidate}: {exc.strerror} (set --log-dir)"
            ) from exc
