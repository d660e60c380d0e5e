"""Applies one RegionPlan through a facade: obsolete updates, metadata, content, AMI fix-ups.

In dry-run it narrates the same plan and writes nothing. The first failure stops the
region (the caller goes on with the next one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from glancesync import ami
from glancesync.config import TargetConfig
from glancesync.exceptions import FacadeError
from glancesync.facade.base import Facade
from glancesync.image import Image
from glancesync.plan import (
    CONTENT_STATUSES,
    ERROR_AMI,
    ERROR_CHECKSUM,
    PENDING_AMI,
    PENDING_METADATA,
    PENDING_RENAME,
    PENDING_REPLACE,
    PENDING_UPLOAD,
    ImagePlan,
    RegionPlan,
    metadata_changes,
    old_name,
    upload_properties,
)
from glancesync.transfer import ImageSource

log = logging.getLogger("glancesync")


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


def format_mb(size: int) -> str:
    """MB as the old tool printed them (Python 2 str(float): 12 significant digits)."""
    text = f"{size / 1048576:.12g}"
    return text if ("." in text or "e" in text) else text + ".0"


class Executor:
    def __init__(
        self,
        facade: Facade,
        region: str,
        target: TargetConfig,
        plan: RegionPlan,
        source_for: Callable[[Image], ImageSource],
        dry_run: bool = False,
    ) -> None:
        self.facade = facade
        self.region = region  # plain name, for the facade
        self.target = target
        self.plan = plan
        self.source_for = source_for
        self.dry_run = dry_run
        self.fullname = plan.region
        self.dest_ids = dict(plan.dest_ids)  # grows as images are uploaded
        self.names = set(plan.dest_names)
        self.result = RegionResult(plan.region)

    def run(self) -> RegionResult:
        for warning in self.plan.warnings:
            log.warning(warning)
        try:
            self._obsolete_phase()
            self._metadata_phase()
            self._content_phase()
            self._ami_phase()
        except FacadeError as exc:
            log.error(str(exc))
            self.result.failed = True
        self.result.needs_operator = [f"{p.name} ({p.status})" for p in self.plan.needs_operator]
        self._summary()
        return self.result

    # -- phases ---------------------------------------------------------------------
    def _obsolete_phase(self) -> None:
        for update in self.plan.obsolete:
            if self.dry_run:
                log.info(f"{self.fullname}: Obsolete image pending to update {update.new_name}")
                continue
            log.info(f"{self.fullname}: updating obsolete image {update.new_name}")
            self.facade.update_image(self.region, update.dest.id, update.changes)
            self.names.add(update.new_name)

    def _metadata_phase(self) -> None:
        for p in self.plan.images:
            if not p.changes or p.status not in (PENDING_METADATA, ERROR_AMI):
                continue
            assert p.dest is not None
            self._update(p, p.changes)

    def _content_phase(self) -> None:
        for p in self.plan.upload_order():
            mb = format_mb(p.master.size)
            if p.status == ERROR_CHECKSUM:
                assert p.dest is not None
                log.warning(
                    f"Image {p.name} has a different checksum ({p.dest.checksum}) in region "
                    f"{self.fullname} than in the master region. It was not set what to do. "
                    "Please, fill either dontupdate, replace or rename with the checksum."
                )
                continue
            if p.status == ERROR_AMI:
                log.warning(
                    f"Image {p.name} cannot be synchronised to region {self.fullname}: {p.problem}."
                )
                continue
            if p.status == PENDING_REPLACE:
                log.info(f"{self.fullname}: Replacing image {p.name} ({mb} MB)")
            elif p.status == PENDING_RENAME:
                log.info(f"{self.fullname}: Renaming and replacing image {p.name} ({mb} MB)")
            elif not self.dry_run:
                log.info(f"{self.fullname}: Uploading image {p.name} ({mb} MB)")
            if self.dry_run:
                log.info(f"{self.fullname}: Pending: {p.name} ({mb} MB)")
            else:
                {
                    PENDING_UPLOAD: self._upload,
                    PENDING_REPLACE: self._replace,
                    PENDING_RENAME: self._rename,
                }[p.status](p)
                log.info(f"{self.fullname}: Image uploaded.")
            self.result.uploaded_bytes += p.master.size
            counter = {PENDING_UPLOAD: "uploaded", PENDING_REPLACE: "replaced"}.get(
                p.status, "renamed"
            )
            setattr(self.result, counter, getattr(self.result, counter) + 1)

    def _ami_phase(self) -> None:
        for p in self.plan.with_status(PENDING_AMI):
            assert p.dest is not None
            values = ami.resolve(p.ami_refs, self.dest_ids)
            changes = metadata_changes(p.master, p.dest, self.target.metadata_set, values)
            # In a dry run the kernel/ramdisk ids do not exist yet: the update is pending.
            if changes or self.dry_run:
                self._update(p, changes)

    # -- operations -----------------------------------------------------------------
    def _update(self, p: ImagePlan, changes: dict[str, str | None]) -> None:
        assert p.dest is not None
        if self.dry_run:
            log.info(f"{self.fullname}: Image pending to update the metadata {p.name}")
        else:
            log.info(f"{self.fullname}: Updating the metadata of image {p.name}")
            self.facade.update_image(self.region, p.dest.id, changes)
        self.result.metadata_updates += 1

    def _upload(self, p: ImagePlan) -> Image:
        master = p.master
        values = ami.resolve(p.ami_refs, self.dest_ids)
        new = master.copy(properties=upload_properties(master, self.target.metadata_set, values))
        created = self.facade.upload_image(self.region, new, self.source_for(master))
        if not created.same_content(master):
            self._undo(
                lambda: self.facade.delete_image(self.region, created.id),
                f"the bad copy {created.id} of {p.name} could not be deleted",
            )
            raise FacadeError(
                f"{self.fullname}: uploaded image {p.name} does not have the master's content "
                f"(checksum {created.checksum}, master {master.checksum}); it was deleted"
            )
        self.dest_ids[p.name] = created.id
        self.names.add(p.name)
        return created

    def _replace(self, p: ImagePlan) -> None:
        assert p.dest is not None
        created = self._upload(p)
        try:
            self.facade.delete_image(self.region, p.dest.id)
        except FacadeError as exc:
            # Two images with one name would be ambiguous: undo the upload.
            undone = self._undo(
                lambda: self.facade.delete_image(self.region, created.id),
                f"the new copy {created.id} of {p.name} could not be removed again",
            )
            if undone:
                raise FacadeError(f"{exc} (the new copy of {p.name} was removed again)") from exc
            raise

    def _rename(self, p: ImagePlan) -> None:
        assert p.dest is not None
        renamed = old_name(p.name, self.names)
        # Rename first so that two images never share the name; undo if the upload fails.
        self.facade.update_image(self.region, p.dest.id, {"name": renamed, "visibility": "private"})
        self.names.add(renamed)
        try:
            self._upload(p)
        except FacadeError:
            self._undo(
                lambda: self.facade.update_image(
                    self.region, p.dest.id, {"name": p.name, "visibility": p.dest.visibility}
                ),
                f"image {renamed} could not be renamed back to {p.name}",
            )
            raise

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
        if r.failed:
            log.error(f"{self.fullname}: Region synchronisation stopped by the error above.")
        elif self.dry_run and plan.has_work:
            log.info(f"{self.fullname}: MBs pending : {r.uploaded_bytes // 1048576}")
        elif not self.dry_run and plan.with_status(*CONTENT_STATUSES):
            log.info(
                f"{self.fullname}: Total uploaded to region: {r.uploaded_bytes // 1048576} (MB)"
            )
        elif not self.dry_run and (r.metadata_updates or plan.obsolete):
            log.info(f"{self.fullname}: Metadata updated, nothing to upload.")
        elif not r.needs_operator:
            log.info(f"{self.fullname}: Region is synchronized.")
        if r.needs_operator:
            log.warning(
                f"{self.fullname}: Region is not fully synchronized; the operator must act "
                f"on: {', '.join(r.needs_operator)}"
            )
