"""AMI images: kernel_id / ramdisk_id point at other images, by UUID, in each region.

On master they hold master UUIDs; we translate them to the *names* of the referenced
master images, then to the UUIDs of the images with those names in each destination.
No placeholder is ever written (Glance v2 accepts only UUIDs there): a reference that
cannot be resolved makes that one image ``error_ami``.
"""

from __future__ import annotations

from glancesync.image import AMI_PROPERTIES, Image

READY, UPDATE, PENDING, MISSING = "ready", "update", "pending", "missing"


def references(image: Image, master_by_id: dict[str, Image]) -> dict[str, str | None]:
    """prop -> name of the referenced master image; None if that UUID is no master image."""
    refs: dict[str, str | None] = {}
    properties = image.properties
    if "kernel_id" not in properties and "ramdisk_id" not in properties:
        return refs  # (most images)
    for prop in AMI_PROPERTIES:
        uuid = properties.get(prop)
        if uuid:  # an empty value is no reference (the old tool deleted it)
            target = master_by_id.get(uuid)
            refs[prop] = target.name if target else None
    return refs


def check(
    dest: Image | None,
    refs: dict[str, str | None],
    matched: dict[str, Image],
    pending: set[str],
) -> str:
    """READY, UPDATE, PENDING or MISSING for one image (kernels and ramdisks first, not by size).

    ``matched`` are the destination images kept in place this run (name -> image),
    ``pending`` the names (re)uploaded this run, whatever their size.
    """
    states = set()
    dest_props = dest.properties if dest else {}
    for prop in AMI_PROPERTIES:
        if prop not in refs:
            states.add(UPDATE if prop in dest_props else READY)
            continue
        name = refs[prop]
        if name is None:
            states.add(MISSING)
        elif name in pending:
            states.add(PENDING)
        elif name in matched:
            states.add(READY if dest_props.get(prop) == matched[name].id else UPDATE)
        else:
            states.add(MISSING)
    for state in (MISSING, PENDING, UPDATE):
        if state in states:
            return state
    return READY


def problems(
    image: Image, refs: dict[str, str | None], matched: dict[str, Image], pending: set[str]
) -> list[str]:
    """Why the references of ``image`` cannot be resolved (for the error_ami warning)."""
    found = []
    for prop, name in refs.items():
        if name is None:
            found.append(
                f"{prop} {image.properties[prop]} is not an active image of the master tenant "
                "with a unique name in the master region"
            )
        elif name not in matched and name not in pending:
            found.append(f"{prop} points to {name}, which is not selected for this target")
    return found


def resolve(refs: dict[str, str | None], dest_ids: dict[str, str]) -> dict[str, str | None]:
    """prop -> destination UUID for the references (None removes a stale reference)."""
    values: dict[str, str | None] = {prop: None for prop in AMI_PROPERTIES}
    for prop, name in refs.items():
        if name is not None and name in dest_ids:
            values[prop] = dest_ids[name]
    return values


def referenced_names(refs_by_image: dict[str, dict[str, str | None]]) -> set[str]:
    return {name for refs in refs_by_image.values() for name in refs.values() if name}
