"""Obsolete images: a master image renamed ``X_obsolete`` renames its copies.

Only copies with the master's content, owned by the target tenant, are touched; their
visibility follows the master and the ``obsolete_syncprops`` properties are copied.
Nothing is renamed in memory before the content check (the old tool's bug).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from glancesync.config import TargetConfig
from glancesync.facade.base import MetadataChanges
from glancesync.image import Image
from glancesync.selection import OBSOLETE_SUFFIX, same_owner


@dataclass
class ObsoleteUpdate:
    dest: Image
    new_name: str
    changes: MetadataChanges


def obsolete_masters(
    master: dict[str, Image], selected: Collection[str]
) -> tuple[dict[str, Image], list[str]]:
    """The master ``X_obsolete`` images that apply to a target, and warnings.

    ``selected``: the names of the master images the target synchronises (an ``X`` the
    target synchronises makes its ``X_obsolete`` not apply)."""
    result: dict[str, Image] = {}
    warnings = []
    for name, image in master.items():
        if not name.endswith(OBSOLETE_SUFFIX):
            continue
        base = master.get(name[: -len(OBSOLETE_SUFFIX)])
        if base is not None and base.name in selected:
            warnings.append(
                f"Ignore obsolete master image {name} because {base.name} exists and it "
                "is synchronisable."
            )
            continue
        result[name] = image
    return result, warnings


def obsolete_updates(
    obsolete: dict[str, Image], dest_images: list[Image], target: TargetConfig, tenant_id: str
) -> list[ObsoleteUpdate]:
    updates: list[ObsoleteUpdate] = []
    if not obsolete:
        return updates
    for dest in dest_images:
        if not dest.name or not same_owner(dest.owner, tenant_id):
            continue
        if dest.name in obsolete:
            new_name, master = dest.name, obsolete[dest.name]
        elif dest.name + OBSOLETE_SUFFIX in obsolete:
            new_name, master = dest.name + OBSOLETE_SUFFIX, obsolete[dest.name + OBSOLETE_SUFFIX]
        else:
            continue
        if not dest.same_content(master):
            continue
        changes = _obsolete_changes(master, dest, target)
        if new_name != dest.name:
            changes["name"] = new_name
        if changes:
            updates.append(ObsoleteUpdate(dest, new_name, changes))
    return updates


def _obsolete_changes(master: Image, dest: Image, target: TargetConfig) -> MetadataChanges:
    changes: MetadataChanges = {
        prop: master.properties[prop]
        for prop in sorted(target.obsolete_syncprops)
        if prop in master.properties and dest.properties.get(prop) != master.properties[prop]
    }
    if dest.visibility != master.visibility:
        changes["visibility"] = master.visibility
    return changes
