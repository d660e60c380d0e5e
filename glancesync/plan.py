"""PURE: master images + one region's images + target config -> statuses and operations.

This is where every status is decided, and what a sync does about it (the operations of
operations.py). ``--show-status`` prints a RegionPlan's statuses, ``--dry-run`` prints its
operations, a sync applies them (executor.py): the three can never disagree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import cast

from glancesync import ami, condition
from glancesync.config import TargetConfig
from glancesync.facade.base import MetadataChanges
from glancesync.image import AMI_PROPERTIES, Image
from glancesync.obsolete import ObsoleteUpdate, obsolete_masters, obsolete_updates
from glancesync.operations import (
    RENAME,
    REPLACE,
    UPLOAD,
    CopyImage,
    DeleteLeftover,
    FixAmi,
    Operation,
    RemoveDuplicate,
    UpdateMetadata,
    UpdateObsolete,
)
from glancesync.selection import is_synchronisable, same_owner

OK = "ok"
OK_STALLED_CHECKSUM = "ok_stalled_checksum"
ERROR_CHECKSUM = "error_checksum"
ERROR_AMI = "error_ami"
ERROR_PROTECTED = "error_protected"
PENDING_METADATA = "pending_metadata"
PENDING_UPLOAD = "pending_upload"
PENDING_REPLACE = "pending_replace"
PENDING_RENAME = "pending_rename"
PENDING_AMI = "pending_ami"

FINAL_STATUSES = (OK, OK_STALLED_CHECKSUM)
ERROR_STATUSES = (ERROR_CHECKSUM, ERROR_AMI, ERROR_PROTECTED)
CONTENT_STATUSES = (PENDING_UPLOAD, PENDING_REPLACE, PENDING_RENAME)
_COPY_KIND = {PENDING_UPLOAD: UPLOAD, PENDING_REPLACE: REPLACE, PENDING_RENAME: RENAME}


@dataclass(slots=True)
class ImagePlan:
    status: str
    master: Image
    dest: Image | None  # the destination image matched by name (None: not there)
    ami_refs: dict[str, str | None] = field(default_factory=dict)  # prop -> master name
    changes: MetadataChanges = field(default_factory=dict)  # known at plan time
    problem: str = ""  # why an error_* image cannot be synchronised

    @property
    def name(self) -> str:
        return self.master.name or ""


@dataclass
class RegionPlan:
    region: str  # fullname
    images: list[ImagePlan]  # sorted by size, then name
    obsolete: list[ObsoleteUpdate]
    warnings: list[str]
    dest_ids: dict[str, str]  # name -> id of the destination images kept in place
    facts: MasterFacts  # what the plan was made from (shared by the target's regions)
    operations: list[Operation] = field(default_factory=list)  # what a sync does, in order

    def with_status(self, *statuses: str) -> list[ImagePlan]:
        return [p for p in self.images if p.status in statuses]

    def upload_order(self) -> list[ImagePlan]:
        """Content work: kernels/ramdisks first (their ids are needed), then size, name.

        Referenced means by any master image, not only by the selected ones: the same set
        in every region gives every region the same upload order, which a fan-out of the
        master's bytes to several regions at once relies on (no region waits for another
        that waits for it)."""
        work = self.with_status(*CONTENT_STATUSES, *ERROR_STATUSES)
        referenced = self.facts.referenced
        return sorted(work, key=lambda p: (p.name not in referenced, p.master.size, p.name))

    @property
    def needs_operator(self) -> list[ImagePlan]:
        return self.with_status(*ERROR_STATUSES)

    @property
    def has_work(self) -> bool:
        return bool(self.operations)


@dataclass(frozen=True)
class MasterFacts:
    """What planning derives from the master and one target alone: the same for every
    region of the target, so a run computes it once per target (``master_facts``) and
    shares it (read-only) between the plans of its regions."""

    selected: dict[str, Image]  # name -> master image the target wants, by (size, name)
    master_by_id: dict[str, Image]
    refs: dict[str, dict[str, str | None]]  # selected name -> its AMI references
    referenced: frozenset[str]  # names any master image references as kernel/ramdisk
    condition_failures: tuple[str, ...]  # warnings of a failing metadata_condition
    obsolete: dict[str, Image]  # master X_obsolete images that apply to the target
    obsolete_warnings: tuple[str, ...]
    # The selected images' names, sizes and ids in plan order: the same columns in the
    # status of every region of the target.
    names: tuple[str, ...]
    sizes: tuple[int, ...]
    ids: tuple[str, ...]


def master_facts(master: dict[str, Image], target: TargetConfig) -> MasterFacts:
    failures: list[str] = []
    wanted = [image for image in master.values() if is_synchronisable(image, target, failures)]
    # The order of the statuses (size, then name), the same in every region: sorted once.
    wanted.sort(key=attrgetter("size", "name"))
    selected = {image.name or "": image for image in wanted}
    master_by_id = {image.id: image for image in master.values()}
    all_refs = {name: ami.references(m, master_by_id) for name, m in master.items()}
    obsolete: dict[str, Image] = {}
    obsolete_warnings: list[str] = []
    if target.support_obsolete_images:
        obsolete, obsolete_warnings = obsolete_masters(master, selected)
    return MasterFacts(
        selected,
        master_by_id,
        {name: all_refs[name] for name in selected},
        frozenset(ami.referenced_names(all_refs)),
        tuple(failures),
        obsolete,
        tuple(obsolete_warnings),
        tuple(selected),
        tuple(image.size for image in wanted),
        tuple(image.id for image in wanted),
    )


def plan_region(
    region: str,
    master: dict[str, Image],
    dest_images: list[Image],
    target: TargetConfig,
    tenant_id: str,
    *,
    is_master: bool = False,
    is_leftover: Callable[[dict[str, str]], bool] = lambda properties: False,
    facts: MasterFacts | None = None,
) -> RegionPlan:
    """The statuses and operations for one region.

    ``is_master``: the region is the master region named as a destination; its images
    report their status but nothing is ever written there. ``is_leftover`` tells a
    temporary copy of an interrupted run by its properties (see marker.py). ``facts``:
    ``master_facts(master, target)`` when the caller already has it (computed if not).
    """
    leftovers = []
    if not is_master:
        leftovers = [
            image
            for image in dest_images
            if is_leftover(image.properties) and same_owner(image.owner, tenant_id)
        ]
    if leftovers:
        dest_images = [image for image in dest_images if image not in leftovers]
    if facts is None:
        facts = master_facts(master, target)
    # Every plan warns about the images the condition failed on, as if it evaluated it.
    for failure in facts.condition_failures:
        condition.LOG.warning("%s", failure)
    selected = facts.selected
    matched, duplicates, warnings = match_destination(
        region, selected, dest_images, target, tenant_id
    )
    refs, metadata_set = facts.refs, target.metadata_set
    # Nearly every image is a copy of ours with the same content and no AMI reference on
    # either side: its metadata alone decides, right away (_metadata_plan). The others
    # are planned below, from their status by content alone (None: the same content).
    plans: list[ImagePlan | None] = []  # in the order of selected: by size, then name
    content: dict[int, tuple[str, Image, str | None]] = {}  # index -> name, master, status
    problems: dict[int, str] = {}
    for name, m in selected.items():
        dest = matched.get(name)
        status: str | None
        if dest is None:
            status = PENDING_UPLOAD
        elif dest.same_content(m):
            status = None
            if not same_owner(dest.owner, tenant_id):
                status = OK  # the same content; another project's image is never changed
            elif not refs[name]:
                decided = _metadata_plan(m, dest, metadata_set, refs[name])
                if decided is not None:
                    plans.append(decided)
                    continue
        else:
            status = _conflict_rule(dest.content_ids(), target)
            if not same_owner(dest.owner, tenant_id):  # another project's image
                if status in CONTENT_STATUSES:
                    status = ERROR_CHECKSUM
                    problems[len(plans)] = (
                        f"the copy {dest.id} belongs to project {dest.owner}: glancesync "
                        "never changes another project's image"
                    )
            elif status == PENDING_REPLACE and dest.protected:
                status = ERROR_PROTECTED
                problems[len(plans)] = (
                    f"the copy {dest.id} to replace is protected: unprotect it (openstack "
                    f"image set --unprotected {dest.id}) or list its checksum in rename"
                )
        content[len(plans)] = name, m, status
        plans.append(None)
    # An image that cannot be uploaded (error_ami) cannot be referenced either: repeat
    # until no new one appears (AMI chains are one or two levels deep in practice).
    blocked: set[str] = set()
    while True:
        pending = {n for n, _, s in content.values() if s in CONTENT_STATUSES} - blocked
        in_place = {n: image for n, image in matched.items() if n not in pending}
        dest_ids = {n: image.id for n, image in in_place.items()}
        newly = set()
        for index, (name, m, status) in content.items():
            plans[index] = decided = _image_plan(
                m,
                status,
                matched.get(name),
                refs[name],
                in_place,
                pending,
                dest_ids,
                metadata_set,
                problems.get(index, ""),
            )
            if decided.status == ERROR_AMI and name in pending:
                newly.add(name)
        if not newly:
            break
        blocked |= newly
    plans = cast(list[ImagePlan], plans)  # every one planned
    if not is_master:
        _flag_stuck_duplicates(plans, duplicates, target)

    obsolete: list[ObsoleteUpdate] = []
    if target.support_obsolete_images and not is_master:
        warnings += facts.obsolete_warnings
        obsolete = obsolete_updates(facts.obsolete, dest_images, target, tenant_id)
    plan = RegionPlan(region, plans, obsolete, warnings, dest_ids, facts)
    if not is_master:
        plan.operations = _operations(plan, dest_images, leftovers, duplicates, target)
    return plan


def _operations(
    plan: RegionPlan,
    dest_images: list[Image],
    leftovers: list[Image],
    duplicates: dict[str, list[Image]],
    target: TargetConfig,
) -> list[Operation]:
    """The status -> operation mapping, in the order a sync applies them."""
    ops: list[Operation] = [DeleteLeftover(image) for image in leftovers]
    # Every name in the region, for the .old names of renames (most plans rename nothing)
    renames = plan.obsolete or duplicates or plan.with_status(PENDING_RENAME)
    names = {image.name for image in dest_images if image.name} if renames else set()
    for update in plan.obsolete:
        ops.append(UpdateObsolete(update.dest, update.new_name, update.changes))
        names.add(update.new_name)
    for p in plan.images:
        if p.changes and p.dest is not None and p.status in (PENDING_METADATA, ERROR_AMI):
            ops.append(UpdateMetadata(p.name, p.dest, p.changes))
    for p in plan.upload_order():
        if p.status not in CONTENT_STATUSES:
            continue
        kind = _COPY_KIND[p.status]
        renamed = _take(old_name(p.name, names), names) if kind == RENAME else None
        props = upload_properties(p.master, target.metadata_set, {})
        ops.append(CopyImage(kind, p.master, props, dict(p.ami_refs), p.dest, renamed))
    # Other copies with the name (a replace whose delete failed, two uploads...): once
    # the right copy is in place, the rules for conflicting content apply to them too.
    for p in plan.images if duplicates else ():
        for other in duplicates.get(p.name, []):
            rule = _conflict_rule(other.content_ids(), target)
            if rule == PENDING_RENAME:
                ops.append(RemoveDuplicate(p.name, other, _take(old_name(p.name, names), names)))
            elif rule == PENDING_REPLACE and not other.protected:
                ops.append(RemoveDuplicate(p.name, other, None))
    for p in plan.with_status(PENDING_AMI):
        assert p.dest is not None
        ops.append(FixAmi(p.name, p.dest, p.changes, dict(p.ami_refs)))
    return ops


def _flag_stuck_duplicates(
    plans: list[ImagePlan], duplicates: dict[str, list[Image]], target: TargetConfig
) -> None:
    """An image with a second copy of other content that no rule removes (a replace whose
    deletes failed, then the rule was dropped; a protected old copy; two uploads by hand)
    is error_checksum, not ok: the name is ambiguous for every user of the region until
    the operator decides (a rule for its checksum, or deleting it)."""
    if not duplicates:
        return
    for p in plans:
        if p.status not in (OK, PENDING_METADATA, PENDING_AMI):
            continue
        stuck = [
            other
            for other in duplicates.get(p.name, [])
            if not other.same_content(p.master)
            and (
                (rule := _conflict_rule(other.content_ids(), target)) == ERROR_CHECKSUM
                or (rule == PENDING_REPLACE and other.protected)
            )
        ]
        if stuck:
            ids = ", ".join(other.id for other in stuck)
            p.status = ERROR_CHECKSUM
            p.changes = {}
            p.problem = (
                f"another copy named {p.name} ({ids}) has other content and no rule removes "
                "it: list its checksum in replace or rename (or dontupdate to keep it), "
                "unprotect it, or delete it"
            )


def _take(name: str, names: set[str]) -> str:
    names.add(name)
    return name


def _image_plan(
    master: Image,
    status: str | None,
    dest: Image | None,
    refs: dict[str, str | None],
    in_place: dict[str, Image],
    pending: set[str],
    dest_ids: dict[str, str],
    metadata_set: frozenset[str],
    problem: str = "",
) -> ImagePlan:
    """The final status of one image, once its content status (or None: same) is known."""
    changes: MetadataChanges = {}
    if status in CONTENT_STATUSES:
        if ami.check(None, refs, in_place, pending) == ami.MISSING:
            status = ERROR_AMI
    elif status is None:  # same content in place: compare metadata and AMI references
        assert dest is not None
        state = ami.check(dest, refs, in_place, pending)
        ami_values = ami.resolve(refs, dest_ids) if state in (ami.READY, ami.UPDATE) else None
        changes = metadata_changes(master, dest, metadata_set, ami_values)
        status = {ami.MISSING: ERROR_AMI, ami.PENDING: PENDING_AMI}.get(
            state, PENDING_METADATA if changes else OK
        )
    if status == ERROR_AMI:
        problem = "; ".join(ami.problems(master, refs, in_place, pending))
    return ImagePlan(str(status), master, dest, refs, changes, problem)


def _metadata_plan(
    master: Image, dest: Image, metadata_set: frozenset[str], refs: dict[str, str | None]
) -> ImagePlan | None:
    """The plan of a copy of ours with the master's content when neither has AMI
    references (``refs`` empty): its metadata alone decides. None when the copy has
    kernel_id/ramdisk_id properties (_image_plan decides)."""
    present = dest.properties
    if "kernel_id" in present or "ramdisk_id" in present:
        return None
    # The same properties and visibility need no change, whatever metadata_set says.
    if present == master.properties and dest.visibility == master.visibility:
        return ImagePlan(OK, master, dest, refs, {})
    changes = metadata_changes(master, dest, metadata_set, None)
    return ImagePlan(PENDING_METADATA if changes else OK, master, dest, refs, changes)


def match_destination(
    region: str,
    selected: dict[str, Image],
    dest_images: list[Image],
    target: TargetConfig,
    tenant_id: str,
) -> tuple[dict[str, Image], dict[str, list[Image]], list[str]]:
    """Pair destination images with selected master images by name.

    Returns the copy kept for each name (the first active one, or the one with the
    master's content), the other active copies of our project with that name, and the
    warnings.
    """
    matched: dict[str, Image] = {}
    others: dict[str, list[Image]] = {}
    warnings: list[str] = []
    for dest in dest_images:
        name = dest.name
        if not name or name not in selected:
            continue
        if not same_owner(dest.owner, tenant_id):
            warnings.append(
                f"{region}: image {name} (UUID {dest.id}) is owned by other tenant: {dest.owner}"
            )
            if target.only_tenant_images:
                continue
        if dest.status != "active":
            # Two spaces before "is": the 1.7 line, byte for byte (scripts grep for it).
            warnings.append(
                f"{region}: state of image {name} with UUID {dest.id}  is not active: "
                f"{dest.status}"
            )
            continue
        previous = matched.get(name)
        if previous is not None:
            warnings.append(
                f"{region}: image name {name} is duplicated. UUIDs: {dest.id} {previous.id}"
            )
            master = selected[name]
            if not (dest.same_content(master) and not previous.same_content(master)):
                if same_owner(dest.owner, tenant_id):
                    others.setdefault(name, []).append(dest)
                continue
            if same_owner(previous.owner, tenant_id):
                others.setdefault(name, []).append(previous)
        matched[name] = dest
    return matched, others, warnings


def _conflict_rule(ids: set[str], target: TargetConfig) -> str:
    """What dontupdate/rename/replace say about a copy with other content than the master."""
    # Specific values beat "any"; for the same value rename beats replace (it keeps data).
    for values in (ids, {"any"}):
        if values & target.dontupdate:
            return OK_STALLED_CHECKSUM
        if values & target.rename:
            return PENDING_RENAME
        if values & target.replace:
            return PENDING_REPLACE
    return ERROR_CHECKSUM


def metadata_changes(
    master: Image,
    dest: Image,
    metadata_set: frozenset[str],
    ami_values: dict[str, str | None] | None,
) -> MetadataChanges:
    """The diff that makes ``dest`` carry the master's metadata.

    Properties: those of ``metadata_set`` (others are local to the region), or all of
    them when it is empty. Visibility always. AMI references only when resolved
    (``ami_values``: prop -> destination UUID, None to remove).
    """
    changes: MetadataChanges = {}
    wanted, present = master.properties, dest.properties
    if metadata_set:
        scope = _sorted_scope(frozenset(metadata_set))
    else:
        scope = sorted((set(wanted) | set(present)) - set(AMI_PROPERTIES))
    for prop in scope:
        value = wanted.get(prop)  # (property values are never None)
        if value is not None:
            if present.get(prop) != value:
                changes[prop] = value
        elif prop in present:
            changes[prop] = None
    if dest.visibility != master.visibility:
        changes["visibility"] = master.visibility
    if ami_values:
        changes.update(ami_changes(dest, ami_values))
    return changes


@functools.lru_cache(maxsize=64)
def _sorted_scope(metadata_set: frozenset[str]) -> tuple[str, ...]:
    # The same few metadata_sets for every image of every region: sorted once each.
    return tuple(sorted(metadata_set - set(AMI_PROPERTIES)))


def ami_changes(dest: Image, ami_values: dict[str, str | None]) -> MetadataChanges:
    """The kernel_id/ramdisk_id changes that make ``dest`` carry the resolved values."""
    return {
        prop: value
        for prop, value in ami_values.items()
        if dest.properties.get(prop) != value and (value is not None or prop in dest.properties)
    }


def upload_properties(
    master: Image, metadata_set: frozenset[str], ami_values: dict[str, str | None]
) -> dict[str, str]:
    """Properties a new copy is created with: ``metadata_set`` ones (or all), AMI resolved."""
    props = {
        key: value
        for key, value in master.properties.items()
        if key not in AMI_PROPERTIES and (not metadata_set or key in metadata_set)
    }
    props.update({key: value for key, value in ami_values.items() if value is not None})
    return props


def old_name(name: str, existing: set[str]) -> str:
    """Name for a renamed image: ``<name>.old``, else the first free ``<name>.old.N``."""
    candidate, n = f"{name}.old", 1
    while candidate in existing:
        candidate, n = f"{name}.old.{n}", n + 1
    return candidate
