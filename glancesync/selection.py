"""Which master images exist for the sync (pre-filter) and which ones a target wants."""

from __future__ import annotations

from collections import Counter

from glancesync.config import TargetConfig
from glancesync.image import Image

OBSOLETE_SUFFIX = "_obsolete"


def same_owner(owner: str | None, tenant_id: str) -> bool:
    """An empty owner counts as ours; ids compare left-padded with zeros."""
    # Equal ids (the usual case) need no padding: called for every image of every region.
    return not owner or owner == tenant_id or owner.zfill(32) == tenant_id.zfill(32)


def master_images(
    images: list[Image], master_tenant_id: str, forced: frozenset[str] = frozenset()
) -> tuple[dict[str, Image], list[str]]:
    """The master dict (name -> image) and the warnings produced while building it.

    Kept: active, named, owned by the master tenant, and not hidden (os_hidden) unless
    its id is in ``forced`` (a target's forcesyncs): hiding the old ``X`` and uploading
    a new ``X`` is how Glance rotates an image, so a hidden ``X`` must not make the name
    ambiguous. A name seen more than once among those kept is ambiguous, so every image
    with it is dropped.
    """
    kept = [
        image
        for image in images
        if image.status == "active"
        and image.name
        and same_owner(image.owner, master_tenant_id)
        and (not image.hidden or image.id in forced)
    ]
    counts = Counter(image.name for image in kept)
    warnings = [
        f"Duplicated images with name {name} will be ignored"
        for name in sorted(n for n, count in counts.items() if count > 1)
    ]
    return {image.name: image for image in kept if counts[image.name] == 1}, warnings  # type: ignore[misc]


def is_synchronisable(
    image: Image, target: TargetConfig, failures: list[str] | None = None
) -> bool:
    """The selection rules, applied in order; the first that applies decides.

    With ``failures``, the warning of a failing metadata_condition is appended there
    instead of being logged (the caller logs it when the answer is used).
    """
    if (image.name or "").endswith(OBSOLETE_SUFFIX):
        return False
    if image.id in target.forcesyncs:
        return True
    if target.metadata_condition is not None:
        if failures is None:
            return target.metadata_condition(image, target.metadata_set)
        selected, failure = target.metadata_condition.decide(image, target.metadata_set)
        if failure:
            failures.append(failure)
        return selected
    if not image.is_public:
        return False
    if not target.metadata_set:
        return True
    return any(prop in image.properties for prop in target.metadata_set)
