"""One region after another, or all of them together in threads (fan-out, --parallel).

The Runner owns the facades (one per target), lists the master region once per run,
builds the region list from the command line and runs the per-region jobs: plan +
execute, status report, backup.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from glancesync import backup, logsetup, marker, report
from glancesync.config import Settings, TargetConfig
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
from glancesync.fanout import POLL, FanOut
from glancesync.image import Image
from glancesync.interrupt import StopToken
from glancesync.operations import CopyImage
from glancesync.plan import MasterFacts, RegionPlan, master_facts, plan_region
from glancesync.report import Run
from glancesync.selection import master_images
from glancesync.status import RegionStatus, can_fork, in_processes, usable_cpus
from glancesync.transfer import ImageSource, source_for

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
        self._copiers: dict[RegionRef, Callable[[Image, Image], Image] | None] = {}
        # target -> what its plans derive from the master alone (one master per run)
        self._facts: dict[str, MasterFacts] = {}

    @property
    def master_ref(self) -> RegionRef:
        return RegionRef("master", self.settings.master_region)

    # -- facades and the master listing ---------------------------------------------
    def facade(self, target: str) -> Facade:
        if target not in self._facades:
            self._facades[target] = self._make_facade(target)
        return self._facades[target]

    def master(self) -> dict[str, Image]:
        """The master dict, listed once per run."""
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

    # -- region list ----------------------------------------------------------------
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
        master = self.master()
        facts = self._target_facts(ref.target, master)
        return plan_region(
            ref.fullname,
            master,
            images,
            target,
            facade.tenant_id(),
            # Named as a destination, the master reports its statuses; nothing is ever
            # written there (its own _obsolete pairs must never rename master images).
            is_master=ref == self.master_ref,
            is_leftover=marker.is_leftover,
            facts=facts,
        )

    def _target_facts(self, target: str, master: dict[str, Image]) -> MasterFacts:
        facts = self._facts.get(target)
        if facts is None:
            # Region threads may both compute it; the results are equal, either is kept.
            facts = self._facts.setdefault(
                target, master_facts(master, self.settings.targets[target])
            )
        return facts

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
        return self.execute(ref, self.plan(ref), dry_run)

    def source_opener(self, stop: StopToken | None = None) -> Callable[[Image], ImageSource]:
        """Where the bytes of a master image are read from (images_dir file, master API)."""
        master_facade = self.facade("master")

        def source(master: Image) -> ImageSource:
            return source_for(
                master,
                self.settings.images_dir,
                master_facade,
                self.settings.master_region,
                stop=stop,
            )

        return source

    def execute(
        self,
        ref: RegionRef,
        plan: RegionPlan,
        dry_run: bool,
        fanout: FanOut | None = None,
        stop: StopToken | None = None,
    ) -> RegionResult:
        """Apply ``plan``; with ``fanout``, the bytes come from reads shared by regions."""
        facade = self.facade(ref.target)
        copier = None if dry_run else self.server_copier(ref)
        target = self.settings.targets[ref.target]
        opener = self.source_opener(stop)
        source: Callable[[Image], Any] = opener
        done_with = None
        if fanout is not None:
            source = functools.partial(fanout.source, ref.fullname)
            done_with = functools.partial(fanout.done, ref.fullname)
        executor = Executor(
            facade,
            ref.region,
            target,
            plan,
            source,
            dry_run,
            self._run_id(),
            target.retries,
            sleep=stop.sleep if stop is not None else time.sleep,
            # A region that could copy by itself still takes a read shared with others:
            # it costs the master nothing more (its own copy would read the master again).
            shared_read=functools.partial(fanout.shared, ref.fullname) if fanout else None,
            done_with=done_with,
            check_stop=stop.check if stop is not None else None,
            server_copy=copier,
        )
        return executor.run()

    def server_copier(self, ref: RegionRef) -> Callable[[Image, Image], Image] | None:
        """How ``ref`` copies an image from the master itself, or None: stream to it.

        Asked once per region and run (the pre-flight is a GET of its import methods).
        """
        if ref not in self._copiers:
            self._copiers[ref] = self._make_copier(ref)
        return self._copiers[ref]

    def _make_copier(self, ref: RegionRef) -> Callable[[Image, Image], Image] | None:
        target = self.settings.targets[ref.target]
        if not target.server_side_copy or ref == self.master_ref:
            return None
        if not _same_keystone(target, self.settings.master):
            return None  # the region's token would mean nothing to the master's Glance
        facade = self.facade(ref.target)
        master_region = self.settings.master_region
        if facade.server_copy_unavailable(ref.region, master_region) is not None:
            return None
        log.info(f"{ref.fullname}: the region can copy images from {master_region} by itself "
                 "(server-side copy of the images no other region of the run needs)")

        def copy(temporary: Image, master: Image) -> Image:
            return facade.copy_from_region(ref.region, temporary, master_region, master.id)

        return copy

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
        if dry_run or self._streaming_regions(refs) < 2:
            # Nothing to share: one region after the other, each under its header.
            for ref in refs:
                log.info(f"======{ref.fullname}")
                run.results.append(self.sync_region(ref, dry_run))
            return self._finish_run(run)
        # Several regions will need the same bytes: synchronise them together so that
        # each master image is read once (fanout.py); every log line names its region.
        with _region_prefixes():
            self._sync_together(run, refs, dry_run, logdir=None)
        return self._finish_run(run)

    def sync_parallel(self, refs: list[RegionRef], dry_run: bool, base: str = ".") -> int:
        run = self._start_run(dry_run)
        self.master()  # a master that cannot be listed stops the run here
        logdir = _unique_dir(os.path.join(base, datetime.now().strftime("sync_%Y%m%d_%H%M%S")))
        run.log_dir = os.path.abspath(logdir)
        log.info(f"======Master is {self.settings.master_region}")
        log.info(f"Log files of the regions: {run.log_dir}")
        with _console_without_regions():
            self._sync_together(run, refs, dry_run, logdir=logdir)
        log.info("All is done.")
        return self._finish_run(run)

    def _streaming_regions(self, refs: list[RegionRef]) -> int:
        """How many of ``refs`` receive image bytes (offline regions record metadata only)."""
        return sum(1 for ref in refs if self.facade(ref.target).streams_bytes)

    def _sync_together(
        self, run: Run, refs: list[RegionRef], dry_run: bool, logdir: str | None
    ) -> None:
        """Every region in its own thread; their uploads share the reads of the master.

        Each thread lists and plans its region; once every region is planned, the
        fan-out is built from the plans (which region uploads which master image) and
        each thread applies its plan. ``logdir``: each region logs to its own file there
        and a line says when it has finished (``--parallel``). The regions' results go
        to ``run.results``, in the order of ``refs``, also when interrupted.
        """
        for target in dict.fromkeys(ref.target for ref in refs):
            # Authenticate each target once before the threads share its session.
            with contextlib.suppress(FacadeError):
                self.facade(target).tenant_id()
        stop = StopToken()
        together = _Together(self, refs, dry_run, stop)
        threads = [
            threading.Thread(
                target=together.run_region, args=(ref, logdir), name=ref.fullname, daemon=True
            )
            for ref in refs
        ]
        for thread in threads:
            thread.start()
        # Waiting on an Event, not Thread.join: a signal that interrupts join() can make
        # CPython (3.11) take a running thread for a finished one.
        try:
            while not together.all_done.wait(POLL):
                pass
        except Interrupted as exc:
            # Signals reach the main thread only: tell the regions, whose threads clean up
            # what they have in flight, and wait until each one has.
            stop.stop(exc)
            while True:
                with contextlib.suppress(Interrupted):
                    if together.all_done.wait(POLL):
                        break
            raise
        finally:
            run.results = [together.results[ref] for ref in refs if ref in together.results]

    def status(
        self, refs: list[RegionRef], show: Callable[[RegionStatus], None]
    ) -> tuple[bool, int]:
        """Hands each region's status to ``show``, in region order, as soon as it is known
        (a long status prints as it goes); returns whether a sync would change anything,
        and the exit code."""
        master = self.master()
        for target in dict.fromkeys(ref.target for ref in refs):  # before any fork
            self._target_facts(target, master)
        workers = min(len(refs), usable_cpus())
        if workers > 1 and all(self.facade(ref.target).local for ref in refs) and can_fork():
            # Offline regions: reading and comparing them is CPU work, one core each.
            log.debug(f"planning {len(refs)} regions in {workers} worker processes")
            outcomes: Generator[RegionStatus | FacadeError, None, None] = in_processes(
                self._region_status_and_forget, refs, workers
            )
        else:
            outcomes = (self._region_status_or_error(ref) for ref in refs)
        failed, pending, operator = EXIT_OK, False, False
        warnings: list[str] = []
        with contextlib.closing(outcomes):  # whatever happens, workers end here
            for ref, outcome in zip(refs, outcomes, strict=True):
                if isinstance(outcome, FacadeError):
                    log.error(str(outcome))
                    failed = max(failed, outcome.exit_code, key=_severity)
                    continue
                facts = self._facts[ref.target]  # (a worker does not send them back)
                outcome.names, outcome.sizes = facts.names, facts.sizes
                outcome.master_ids = facts.ids
                show(outcome)
                pending = pending or outcome.has_work
                operator = operator or outcome.needs_operator
                warnings += outcome.warnings
        for warning in warnings:
            log.warning(warning)
        if failed or self.failed_targets:
            return pending, max(failed, EXIT_REGION_FAILED, key=_severity)
        return pending, EXIT_NEEDS_OPERATOR if operator else EXIT_OK

    def region_status(self, ref: RegionRef) -> RegionStatus:
        return RegionStatus.of(self.plan(ref))

    def _region_status_and_forget(self, ref: RegionRef) -> RegionStatus:
        # In a worker, which never needs a region again: its memory serves the next one.
        try:
            status = self.region_status(ref)
        finally:
            self.facade(ref.target).forget(ref.region)
        # The master's columns are the parent's already: not sent back with every region.
        status.names = status.sizes = status.master_ids = ()
        return status

    def _region_status_or_error(self, ref: RegionRef) -> RegionStatus | FacadeError:
        try:
            return self.region_status(ref)
        except FacadeError as exc:
            return exc

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


class _Together:
    """The shared state of the regions synchronised together (see Runner._sync_together)."""

    def __init__(self, runner: Runner, refs: list[RegionRef], dry_run: bool,
                 stop: StopToken) -> None:
        self.runner = runner
        self.dry_run = dry_run
        self.stop = stop
        self.results: dict[RegionRef, RegionResult] = {}
        self._expected = len(refs)
        self._plans: dict[RegionRef, RegionPlan | None] = {}
        self._lock = threading.Lock()
        self._planned = threading.Event()
        self._finished = 0
        self.all_done = threading.Event()  # every region's thread has ended
        if not refs:
            self.all_done.set()
        self.fanout: FanOut | None = None

    def _report_plan(self, ref: RegionRef, plan: RegionPlan | None) -> None:
        with self._lock:
            self._plans[ref] = plan
            if len(self._plans) == self._expected:
                try:
                    self.fanout = self._build_fanout()
                except Exception as exc:  # a bug: every region reads on its own, but goes on
                    log.exception(f"the shared reads could not be planned: {exc!r}")
                    self.fanout = FanOut({}, self.runner.source_opener(self.stop), self.stop)
                finally:
                    self._planned.set()

    def _build_fanout(self) -> FanOut:
        runner = self.runner
        expected: dict[str, set[str]] = {}
        for ref, plan in self._plans.items():
            if plan is None or self.dry_run or not runner.facade(ref.target).streams_bytes:
                continue
            for op in plan.operations:
                if isinstance(op, CopyImage):
                    expected.setdefault(op.master.id, set()).add(ref.fullname)
        return FanOut(expected, runner.source_opener(self.stop), self.stop)

    def _wait_for_plans(self) -> FanOut:
        while not self._planned.wait(POLL):
            self.stop.check()
        assert self.fanout is not None
        return self.fanout

    def run_region(self, ref: RegionRef, logdir: str | None) -> None:
        _thread_region.name = ref.fullname
        handler = _region_log_file(logdir, ref.fullname) if logdir else None
        if logdir is None:
            log.info(f"======{ref.fullname}")
        start = time.monotonic()
        fanout: FanOut | None = None
        result = RegionResult(ref.fullname, failed=True)
        code = EXIT_REGION_FAILED
        try:
            try:
                plan = None
                try:
                    plan = self._plan(ref, result)
                finally:
                    self._report_plan(ref, plan)
                if plan is not None:
                    fanout = self._wait_for_plans()
                    result = self.runner.execute(ref, plan, self.dry_run, fanout, self.stop)
                    code = exit_code([result])
            finally:
                if fanout is not None:
                    fanout.leave(ref.fullname)
                # Changes a facade holds back (offline files) are written when the region
                # ends, failed or interrupted too: what was done is recorded.
                self.runner._flush(ref)
        except Interrupted as exc:
            log.error(f"{ref.fullname}: {exc}; the operation in progress was cleaned up")
            result.interrupted = result.failed = True
            code = exc.exit_code
        except GlanceSyncError as exc:
            log.error(str(exc))
            result = RegionResult(ref.fullname, failed=True, error=str(exc))
            result.exit_code = code = exc.exit_code
        except Exception as exc:  # a bug: fail this region loudly, the others go on
            log.exception(f"{ref.fullname}: unexpected error: {exc!r}")
            result = RegionResult(ref.fullname, failed=True, error=f"unexpected error: {exc!r}")
        finally:
            result.elapsed = time.monotonic() - start
            self.results[ref] = result
            if handler is not None:
                logging.getLogger("glancesync").removeHandler(handler)
                handler.close()
            _thread_region.name = None
            if logdir is not None:  # on the console (no longer a line of the region's file)
                suffix = {EXIT_OK: "", EXIT_NEEDS_OPERATOR: " (some images need the operator)"}
                log.info(f"Region {ref.fullname} has finished{suffix.get(code, ' with errors')}")
            with self._lock:
                self._finished += 1
                if self._finished == self._expected:
                    self.all_done.set()

    def _plan(self, ref: RegionRef, result: RegionResult) -> RegionPlan | None:
        try:
            return self.runner.plan(ref)
        except FacadeError as exc:
            log.error(str(exc))
            result.error = str(exc)
            result.exit_code = exc.exit_code
            return None


# -- log lines of regions synchronised together ---------------------------------------
_thread_region = threading.local()  # .name: the region the current thread synchronises


def _current_region() -> str | None:
    return getattr(_thread_region, "name", None)


class _RegionPrefix(logging.Filter):
    """Lines of regions synchronised together start with the region when they do not
    name it already (plan warnings, messages about a master image...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        region = _current_region()
        if region is not None:
            message = record.getMessage()
            if region not in message:
                record.msg, record.args = f"{region}: {message}", ()
        return True


@contextlib.contextmanager
def _region_prefixes() -> Iterator[None]:
    logger = logging.getLogger("glancesync")
    prefix = _RegionPrefix()
    logger.addFilter(prefix)
    try:
        yield
    finally:
        logger.removeFilter(prefix)


class _OnlyRegion(logging.Filter):
    def __init__(self, region: str) -> None:
        super().__init__()
        self.region = region

    def filter(self, record: logging.LogRecord) -> bool:
        return _current_region() == self.region


class _NotRegions(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _current_region() is None


def _region_log_file(logdir: str, region: str) -> logging.Handler:
    """``logdir/<region>.txt`` gets the lines of this region's thread, and only those."""
    handler = logsetup.make_handler(path=os.path.join(logdir, f"{region}.txt"))
    handler.addFilter(_OnlyRegion(region))
    logging.getLogger("glancesync").addHandler(handler)
    return handler


@contextlib.contextmanager
def _console_without_regions() -> Iterator[None]:
    """With per-region log files, the regions' lines stay out of the other handlers."""
    logger = logging.getLogger("glancesync")
    handlers = list(logger.handlers)
    quiet = _NotRegions()
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


def _same_keystone(target: TargetConfig, master: TargetConfig) -> bool:
    if target.name == master.name:
        return True
    mine, theirs = target.credentials, master.credentials
    if mine.cloud or theirs.cloud:
        return bool(mine.cloud) and mine.cloud == theirs.cloud
    return bool(mine.auth_url) and (mine.auth_url or "").rstrip("/") == (
        theirs.auth_url or ""
    ).rstrip("/")


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
