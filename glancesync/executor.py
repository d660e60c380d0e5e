"""Applies the operations of one RegionPlan through a facade; in dry-run, prints them.

The executor decides nothing: plan.py chose the operations and their arguments. What it
owns is how each one is carried out safely:

* a new copy is uploaded under a temporary name, private, hidden and marked (marker.py),
  verified, and only then put in place by metadata calls; a failure or an interruption
  undoes what was half done (the copy in flight is deleted, a renamed old copy gets its
  name back), so a region is never left worse than it was;
* one image's failure does not stop the others: every failure is listed at the end and
  the region counts as failed;
* an upload that meets a transient error (connection, timeout, 502/503/504) is retried
  from its source, with backoff and jitter, ``retries`` times at most.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from glancesync import ami
from glancesync.config import TargetConfig
from glancesync.exceptions import FacadeError, Interrupted, SourceMismatch
from glancesync.facade.base import Facade, MetadataChanges
from glancesync.image import Image
from glancesync.marker import MARKER, RunId
from glancesync.operations import (
    RENAME,
    REPLACE,
    CopyImage,
    DeleteLeftover,
    FixAmi,
    Operation,
    RemoveDuplicate,
    UpdateMetadata,
    UpdateObsolete,
    as_dict,
)
from glancesync.plan import ERROR_AMI, ERROR_CHECKSUM, RegionPlan, ami_changes
from glancesync.transfer import ImageSource
from glancesync.units import format_duration, format_rate, format_size

log = logging.getLogger("glancesync")

DEFAULT_RETRIES = 3
MAX_RETRY_DELAY = 30.0  # seconds


@dataclass
class RegionResult:
    """What one region's sync did; the run summary, reports and metrics are built from it."""

    region: str
    failed: bool = False
    error: str = ""  # why the region failed as a whole (listing, authentication...)
    needs_operator: list[str] = field(default_factory=list)  # "name (status)"
    failures: list[str] = field(default_factory=list)  # one line per image that failed
    uploaded: int = 0  # new copies (pending_upload)
    replaced: int = 0
    renamed: int = 0
    metadata_updates: int = 0
    uploaded_bytes: int = 0
    elapsed: float = 0.0  # seconds
    interrupted: bool = False
    has_work: bool = False  # the plan had operations (a dry run: a sync would change things)
    operations: list[dict[str, object]] = field(default_factory=list)  # as operations.as_dict
    exit_code: int = 1  # of a failed region: 2 when only the operator can fix it

    def to_dict(self) -> dict[str, object]:
        """Plain data (a --parallel child hands its result to the parent as JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegionResult:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _server_copyable(master: Image) -> bool:
    """Only a copy that can be checked against the master's own hashes is left to the
    region (and Glance refuses an import without disk and container formats)."""
    return bool(
        master.size and master.checksum and master.disk_format and master.container_format
    )


class Executor:
    def __init__(
        self,
        facade: Facade,
        region: str,
        target: TargetConfig,
        plan: RegionPlan,
        source_for: Callable[[Image], ImageSource],
        dry_run: bool = False,
        run: RunId | None = None,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        done_with: Callable[[Image], None] | None = None,
        check_stop: Callable[[], None] | None = None,
        server_copy: Callable[[Image, Image], Image] | None = None,
        shared_read: Callable[[Image], bool] | None = None,
    ) -> None:
        self.facade = facade
        self.region = region  # plain name, for the facade
        self.target = target
        self.plan = plan
        self.source_for = source_for
        self.dry_run = dry_run
        self.run_id = run or RunId()
        self.retries = retries
        self._sleep = sleep
        # done_with(master): this region no longer needs those bytes (uploaded, failed or
        # skipped), so a read shared with other regions does not wait for it.
        self._done_with = done_with or (lambda master: None)
        # Run in a thread, the executor learns of an interruption from check_stop().
        self._check_stop = check_stop or (lambda: None)
        # server_copy(temporary, master): the region makes the copy from the master
        # itself (no bytes through us); None: stream every image.
        self._server_copy = server_copy
        # shared_read(master): other regions of the run stream this image from one shared
        # read, which serves this region too at no extra read of the master: stream it.
        self._shared_read = shared_read or (lambda master: False)
        self.fullname = plan.region
        self.dest_ids = dict(plan.dest_ids)  # grows as copies are put in place
        self.failed_names: set[str] = set()
        self.result = RegionResult(plan.region)
        self._start = time.monotonic()

    def run(self) -> RegionResult:
        for warning in self.plan.warnings:
            log.warning(warning)
        for p in self.plan.upload_order():
            self._warn_operator(p)
        self.result.needs_operator = [f"{p.name} ({p.status})" for p in self.plan.needs_operator]
        self.result.has_work = self.plan.has_work
        self.result.operations = [as_dict(op) for op in self.plan.operations]
        self._start = time.monotonic()
        try:
            for op in self.plan.operations:
                self._check_stop()
                self._apply(op)
        except (Interrupted, KeyboardInterrupt):
            self.result.interrupted = self.result.failed = True
            raise
        self.result.failed = bool(self.result.failures)
        self._summary()
        return self.result

    def _warn_operator(self, p) -> None:
        if p.status == ERROR_CHECKSUM and not p.problem:
            assert p.dest is not None
            log.warning(
                f"Image {p.name} has a different checksum ({p.dest.checksum}) in region "
                f"{self.fullname} than in the master region. It was not set what to do. "
                "Please, fill either dontupdate, replace or rename with the checksum."
            )
        elif p.status == ERROR_AMI or p.problem:
            log.warning(
                f"Image {p.name} cannot be synchronised to region {self.fullname}: {p.problem}."
            )

    def _apply(self, op: Operation) -> None:
        handlers: dict[type, Callable] = {
            DeleteLeftover: self._delete_leftover,
            UpdateObsolete: self._update_obsolete,
            UpdateMetadata: self._update_metadata,
            RemoveDuplicate: self._remove_duplicate,
            CopyImage: self._copy,
            FixAmi: self._fix_ami,
        }
        try:
            handlers[type(op)](op)
        except FacadeError as exc:
            name = getattr(op, "name", None) or op.image.name
            log.error(str(exc))
            self.result.failures.append(f"{name}: {exc}")
            self.failed_names.add(name)

    # -- simple operations ----------------------------------------------------------------
    def _delete_leftover(self, op: DeleteLeftover) -> None:
        image = op.image
        if self.dry_run:
            log.info(
                f"{self.fullname}: Leftover image {image.name} ({image.id}) of an interrupted "
                "run pending to delete"
            )
            return
        log.info(
            f"{self.fullname}: Deleting leftover image {image.name} ({image.id}) of an "
            "interrupted run"
        )
        self.facade.delete_image(self.region, image.id)

    def _update_obsolete(self, op: UpdateObsolete) -> None:
        if self.dry_run:
            log.info(f"{self.fullname}: Obsolete image pending to update {op.new_name}")
        else:
            log.info(f"{self.fullname}: updating obsolete image {op.new_name}")
            self.facade.update_image(self.region, op.image.id, op.changes)
        self.result.metadata_updates += 1

    def _update_metadata(self, op: UpdateMetadata) -> None:
        self._update(op.name, op.image, op.changes)

    def _remove_duplicate(self, op: RemoveDuplicate) -> None:
        image = op.image
        if op.rename_to:
            what = f"renaming the other copy {image.id} of {op.name} to {op.rename_to}"
        else:
            what = f"deleting the other copy {image.id} of {op.name} (its checksum is in replace)"
        if self.dry_run:
            log.info(f"{self.fullname}: Pending: {what}")
            return
        log.info(f"{self.fullname}: {what[0].upper()}{what[1:]}")
        if op.rename_to:
            changes = {"name": op.rename_to, "visibility": "private"}
            self.facade.update_image(self.region, image.id, changes)
        else:
            self.facade.delete_image(self.region, image.id)

    def _fix_ami(self, op: FixAmi) -> None:
        failed = sorted(n for n in op.ami_refs.values() if n in self.failed_names)
        if failed:
            log.warning(
                f"{self.fullname}: kernel_id/ramdisk_id of {op.name} left as they are: "
                f"{', '.join(failed)} could not be synchronised in this run"
            )
            return
        values = ami.resolve(op.ami_refs, self.dest_ids)
        changes = {**op.changes, **ami_changes(op.image, values)}
        # In a dry run the new kernel/ramdisk ids do not exist yet: the update is pending.
        if changes or self.dry_run:
            self._update(op.name, op.image, changes)

    def _update(self, name: str, image: Image, changes: MetadataChanges) -> None:
        if self.dry_run:
            log.info(f"{self.fullname}: Image pending to update the metadata {name}")
        else:
            log.info(f"{self.fullname}: Updating the metadata of image {name}")
            self.facade.update_image(self.region, image.id, changes)
        self.result.metadata_updates += 1

    # -- copies -----------------------------------------------------------------------------
    def _copy(self, op: CopyImage) -> None:
        try:
            self._copy_image(op)
        finally:
            self._done_with(op.master)

    def _copy_image(self, op: CopyImage) -> None:
        size = format_size(op.master.size or 0)
        counter = {REPLACE: "replaced", RENAME: "renamed"}.get(op.kind, "uploaded")
        if op.kind == REPLACE:
            log.info(f"{self.fullname}: Replacing image {op.name} ({size})")
        elif op.kind == RENAME:
            log.info(f"{self.fullname}: Renaming and replacing image {op.name} ({size})")
        elif not self.dry_run:
            log.info(f"{self.fullname}: Uploading image {op.name} ({size})")
        if self.dry_run:  # the counters say what a sync would do
            log.info(f"{self.fullname}: Pending: {op.name} ({size})")
            self.result.uploaded_bytes += op.master.size or 0
            setattr(self.result, counter, getattr(self.result, counter) + 1)
            return
        failed = sorted(n for n in op.ami_refs.values() if n in self.failed_names)
        if failed:
            raise FacadeError(
                f"{self.fullname}: image {op.name} not uploaded: {', '.join(failed)}, which it "
                "references, could not be synchronised in this run"
            )
        created = self._upload_verified(op)
        self._swap(op, created)
        self.dest_ids[op.name] = created.id
        log.info(f"{self.fullname}: Image uploaded.")
        self.result.uploaded_bytes += op.master.size or 0
        setattr(self.result, counter, getattr(self.result, counter) + 1)

    def _temporary(self, op: CopyImage) -> Image:
        """The new copy as it is created: temporary name, private, hidden, marked."""
        values = ami.resolve(op.ami_refs, self.dest_ids)
        properties = dict(op.properties)
        properties.update({key: value for key, value in values.items() if value is not None})
        properties[MARKER] = self.run_id.value
        return op.master.copy(
            name=self.run_id.temp_name(op.name),
            visibility="private",
            hidden=True,
            protected=False,
            properties=properties,
        )

    def _upload_verified(self, op: CopyImage) -> Image:
        """Upload the temporary copy and check its content; retried when that may help."""
        temporary = self._temporary(op)
        if (
            self._server_copy is not None
            and _server_copyable(op.master)
            and not self._shared_read(op.master)
        ):
            created = self._copied_by_region(op, temporary)
            if created is not None:
                return created
        source = self.source_for(op.master)
        attempt = 0
        while True:
            try:
                created = self.facade.upload_image(self.region, temporary, source)
                problem = source.check_copy(created)
                if problem is None:
                    return created
                self._undo(
                    lambda bad=created.id: self.facade.delete_image(self.region, bad),
                    f"the bad copy {created.id} of {op.name} could not be deleted",
                )
                raise FacadeError(
                    f"{self.fullname}: uploaded image {op.name} does not have the master's "
                    f"content ({problem}); it was deleted"
                )
            except SourceMismatch as exc:
                if not source.fallback():
                    raise
                log.warning(f"{exc}; reading it from {source.description} instead")
            except FacadeError as exc:
                if not exc.transient or attempt >= self.retries:
                    raise
                attempt += 1
                delay = min(MAX_RETRY_DELAY, 2.0**attempt) * random.uniform(0.5, 1.0)
                log.warning(
                    f"{exc} (retry {attempt} of {self.retries} in {delay:.1f} s)"
                )
                self._sleep(delay)
                self._check_stop()

    def _copied_by_region(self, op: CopyImage, temporary: Image) -> Image | None:
        """The temporary copy made by the region itself from the master, checked against
        the master's hashes; None (after a warning) when that did not work: stream it."""
        assert self._server_copy is not None
        try:
            created = self._server_copy(temporary, op.master)
        except FacadeError as exc:
            log.warning(f"{exc}; streaming the images to {self.fullname} instead")
            self._server_copy = None  # the next images are streamed straight away
            return None
        problem = ImageSource(op.master, "the master", lambda: iter(())).check_copy(created)
        if problem is None:
            log.info(f"{self.fullname}: {op.name} copied by the region from the master region")
            return created
        self._undo(
            lambda: self.facade.delete_image(self.region, created.id),
            f"the bad copy {created.id} of {op.name} could not be deleted",
        )
        log.warning(
            f"{self.fullname}: the region's own copy of {op.name} does not have the master's "
            f"content ({problem}); it was deleted, the image is streamed instead"
        )
        self._server_copy = None
        return None

    def _swap(self, op: CopyImage, created: Image) -> None:
        """Put the verified copy in place; undo everything on a failure or interruption."""
        master = op.master
        final: MetadataChanges = {
            "name": op.name,
            "visibility": master.visibility,
            "os_hidden": False,
            MARKER: None,
        }
        if master.protected and op.kind != REPLACE:
            final["protected"] = True
        renamed = promoted = False
        try:
            if op.kind == RENAME:
                assert op.old is not None and op.old_name is not None
                # Set first: an interruption while this call is in flight may find the
                # rename done; renaming back is harmless when it was not.
                renamed = True
                self.facade.update_image(
                    self.region, op.old.id, {"name": op.old_name, "visibility": "private"}
                )
            self.facade.update_image(self.region, created.id, final)
            promoted = True
            if op.kind == REPLACE:
                self._delete_old(op, created)
                if master.protected:
                    self.facade.update_image(self.region, created.id, {"protected": True})
        except BaseException:
            if op.kind == REPLACE and promoted:
                raise  # the new copy is in place (and verified): that is kept
            self._undo(
                lambda: self.facade.delete_image(self.region, created.id),
                f"the new copy {created.id} of {op.name} could not be removed again",
            )
            if renamed:
                assert op.old is not None
                old = op.old
                self._undo(
                    lambda: self.facade.update_image(
                        self.region, old.id, {"name": op.name, "visibility": old.visibility}
                    ),
                    f"image {op.old_name} could not be renamed back to {op.name}",
                )
            raise

    def _delete_old(self, op: CopyImage, created: Image) -> None:
        """Delete the replaced copy. If that fails and it is still there, take the new one
        back out (two copies with one name would be ambiguous); if it is gone, the
        delete did happen (a lost answer) and the new copy stays. An interruption during
        the delete sends it once more (completing the swap) before it goes on."""
        assert op.old is not None
        interruption: BaseException | None = None
        try:
            self.facade.delete_image(self.region, op.old.id)
            return
        except FacadeError as exc:
            error = exc
        except (Interrupted, KeyboardInterrupt) as exc:
            # The new copy is already in place: finish the swap (the delete may never have
            # reached Glance) rather than stop with two copies named X.
            interruption = exc
            try:
                self.facade.delete_image(self.region, op.old.id)
            except FacadeError as again:
                error = again
            else:
                raise interruption  # done: the interruption goes on
        try:
            still_there = self.facade.get_image(self.region, op.old.id) is not None
        except FacadeError:
            still_there = True
        if not still_there:
            if interruption is not None:
                raise interruption
            return
        demote: MetadataChanges = {
            "name": self.run_id.temp_name(op.name),
            "visibility": "private",
            "os_hidden": True,
            MARKER: self.run_id.value,
        }

        def take_back() -> None:
            self.facade.update_image(self.region, created.id, demote)
            self.facade.delete_image(self.region, created.id)

        if self._undo(take_back, f"the new copy {created.id} of {op.name} could not be removed"):
            if interruption is not None:
                raise interruption
            raise FacadeError(f"{error} (the new copy of {op.name} was removed again)") from error
        if interruption is not None:
            log.error(str(error))
            raise interruption
        raise error

    def _undo(self, action: Callable[[], None], what: str) -> bool:
        """Best-effort repair after a failure; the original error is what gets reported."""
        try:
            action()
        except FacadeError as exc:
            log.error(f"{self.fullname}: {what}: {exc}")
            return False
        return True

    def _summary(self) -> None:
        r, plan = self.result, self.plan
        uploads = [op for op in plan.operations if isinstance(op, CopyImage)]
        if r.failures:
            names = ", ".join(f.split(":", 1)[0] for f in r.failures)
            log.error(f"{self.fullname}: Region synchronisation failed for: {names}")
        elif self.dry_run and plan.has_work:
            copies = r.uploaded + r.replaced + r.renamed
            log.info(
                f"{self.fullname}: Work pending: {format_size(r.uploaded_bytes)} to upload "
                f"({_count(copies, 'image')}), {_count(r.metadata_updates, 'metadata update')}"
            )
        elif not self.dry_run and uploads:
            copies = r.uploaded + r.replaced + r.renamed
            seconds = time.monotonic() - self._start
            log.info(
                f"{self.fullname}: Total uploaded to region: {format_size(r.uploaded_bytes)} "
                f"({_count(copies, 'image')}) in {format_duration(seconds)}, "
                f"{format_rate(r.uploaded_bytes, seconds)}"
            )
        elif not self.dry_run and plan.operations:
            log.info(f"{self.fullname}: Metadata updated, nothing to upload.")
        elif not r.needs_operator:
            log.info(f"{self.fullname}: Region is synchronized.")
        if r.needs_operator:
            log.warning(
                f"{self.fullname}: Region is not fully synchronized; the operator must act "
                f"on: {', '.join(r.needs_operator)}"
            )


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"
