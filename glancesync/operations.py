"""The operations a sync performs on one region: plain data, decided by plan.py.

The executor interprets them one after another; ``--dry-run`` prints them. Each carries
everything it needs except what only exists at apply time: the ids of kernels and
ramdisks uploaded earlier in the same run (``ami_refs`` name them by master name).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from glancesync.facade.base import MetadataChanges
from glancesync.image import Image

UPLOAD, REPLACE, RENAME = "upload", "replace", "rename"


@dataclass
class DeleteLeftover:
    """A temporary copy of a run that stopped half-way (a hard kill)."""

    image: Image


@dataclass
class UpdateObsolete:
    """A copy of a master image renamed ``X_obsolete``: follow the master."""

    image: Image
    new_name: str
    changes: MetadataChanges


@dataclass
class UpdateMetadata:
    name: str
    image: Image
    changes: MetadataChanges


@dataclass
class CopyImage:
    """Upload a new copy under a temporary name, verify it, then put it in place.

    ``kind``: UPLOAD (the name is free), REPLACE (``old`` is deleted once the new copy is
    in place) or RENAME (``old`` becomes ``old_name``, private, first).
    """

    kind: str
    master: Image
    properties: dict[str, str]  # user properties of the copy, AMI references excluded
    ami_refs: dict[str, str | None] = field(default_factory=dict)  # prop -> master name
    old: Image | None = None
    old_name: str | None = None

    @property
    def name(self) -> str:
        return self.master.name or ""


@dataclass
class FixAmi:
    """After the kernels/ramdisks it references were (re)uploaded: point at the new ids."""

    name: str
    image: Image
    changes: MetadataChanges  # the other differences, known at plan time
    ami_refs: dict[str, str | None]


@dataclass
class RemoveDuplicate:
    """Another copy with the image's name but old content that replace/rename covers."""

    name: str
    image: Image
    rename_to: str | None  # None: delete it


Operation = DeleteLeftover | UpdateObsolete | UpdateMetadata | CopyImage | FixAmi | RemoveDuplicate


def as_dict(op: Operation) -> dict[str, object]:
    """One operation as plain data (the JSON form of a dry run)."""
    if isinstance(op, CopyImage):
        return {
            "operation": op.kind,
            "image": op.name,
            "master_id": op.master.id,
            "size": op.master.size,
            "replaces": op.old.id if op.old else None,
            "old_copy_renamed_to": op.old_name,
        }
    if isinstance(op, DeleteLeftover):
        return {"operation": "delete_leftover", "image": op.image.name, "id": op.image.id}
    if isinstance(op, RemoveDuplicate):
        kind = "rename_duplicate" if op.rename_to else "delete_duplicate"
        return {"operation": kind, "image": op.name, "id": op.image.id, "new_name": op.rename_to}
    if isinstance(op, UpdateObsolete):
        return {
            "operation": "update_obsolete",
            "image": op.image.name,
            "id": op.image.id,
            "changes": sorted(op.changes),
        }
    if isinstance(op, FixAmi):
        return {
            "operation": "fix_ami",
            "image": op.name,
            "id": op.image.id,
            "changes": sorted({*op.changes, *op.ami_refs}),
        }
    return {
        "operation": "update_metadata",
        "image": op.name,
        "id": op.image.id,
        "changes": sorted(op.changes),
    }
