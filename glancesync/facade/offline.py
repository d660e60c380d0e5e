"""Regions kept as backup CSV files in a directory: scenario tests and what-if runs.

``DIR/backup_<fullname>.csv`` is one region (SPEC §4.3 rows), so any directory written by
``--make-backup`` (ours or the 2015 tool's) can be synchronised offline. Files of the
master target have no ``:`` in their region part; ``backup_T:Madrid.csv`` is region
Madrid of target T.

The file is the only state: every call re-reads it, and every change rewrites it
atomically (glancesync.backup.write_csv_atomic). Two facades on the same directory, or a
later run, therefore see each other's changes, and forked children syncing different
regions never touch the same file. Two processes changing the SAME region at once are
not serialised (last writer wins), which the runner never does.

Offline regions hold metadata only: an upload records the master's checksum, hashes and
size without reading any bytes, and download is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glancesync.backup import (
    BACKUP_FILE_PREFIX,
    BACKUP_FILE_SUFFIX,
    backup_filename,
    read_backup_rows,
    read_tenants,
    write_csv_atomic,
)
from glancesync.exceptions import ConfigError, FacadeError
from glancesync.facade.base import Facade, MetadataChanges
from glancesync.image import VISIBILITIES, Image, is_user_property

if TYPE_CHECKING:
    from glancesync.config import TargetConfig
    from glancesync.transfer import ImageSource


@dataclass
class _Entry:
    # The row as read is written back as is while its image is untouched, so a rewrite
    # only changes the lines of the images that changed (old 9-field rows stay 9-field).
    row: list[str] | None
    image: Image


@dataclass
class _RegionFile:
    fullname: str
    path: str
    entries: list[_Entry]

    def index(self, image_id: str) -> int:
        for i, entry in enumerate(self.entries):
            if entry.image.id == image_id:
                return i
        raise FacadeError(f"{self.fullname}: no image with id {image_id}")

    def save(self) -> None:
        write_csv_atomic(
            self.path,
            (e.row if e.row is not None else e.image.to_csv_row() for e in self.entries),
        )


class OfflineFacade(Facade):
    def __init__(
        self,
        target_name: str,
        directory: str,
        tenant_id: str | None = None,
        tenant_name: str | None = None,
    ) -> None:
        super().__init__(target_name)
        if not os.path.isdir(directory):
            raise ConfigError(f"offline mode: {directory} is not a directory")
        self.directory = directory
        self._tenant_id = tenant_id
        self._tenant_name = tenant_name

    @classmethod
    def for_target(cls, target: TargetConfig, directory: str) -> OfflineFacade:
        """The facade for a configured target; the tenant name is the project name."""
        return cls(target.name, directory, target.tenant_id, target.credentials.project_name)

    # -- reading ------------------------------------------------------------------------
    def regions(self) -> list[str]:
        try:
            with os.scandir(self.directory) as it:
                files = [e.name for e in it if e.is_file()]
        except OSError as exc:
            raise ConfigError(
                f"offline mode: cannot list {self.directory}: {exc.strerror or exc}"
            ) from exc
        found = []
        for filename in files:
            if filename.startswith(BACKUP_FILE_PREFIX) and filename.endswith(BACKUP_FILE_SUFFIX):
                region = self._own_region(
                    filename[len(BACKUP_FILE_PREFIX) : -len(BACKUP_FILE_SUFFIX)]
                )
                if region:
                    found.append(region)
        return sorted(found)

    def _own_region(self, fullname: str) -> str | None:
        """The plain region name if ``fullname`` belongs to this target, else None."""
        if self.target_name == "master":
            return fullname if fullname and ":" not in fullname else None
        target, sep, region = fullname.partition(":")
        if sep and target == self.target_name and region and ":" not in region:
            return region
        return None

    def tenant_id(self) -> str:
        if self._tenant_id:
            return self._tenant_id
        recorded = read_tenants(self.directory).get(self.target_name)
        if recorded:  # a --make-backups directory: the real project id
            return recorded
        if self._tenant_name:
            # The old mock's convention (SPEC §4.4): tenant "tenant1" has id "tenant1id".
            return f"{self._tenant_name}id"
        raise ConfigError(
            f"offline mode: target [{self.target_name}] needs tenant_id or a tenant name "
            "(tenant/credential option or OS_PROJECT_NAME)"
        )

    def list_images(self, region: str) -> list[Image]:
        return [entry.image for entry in self._load(region).entries]

    def get_image(self, region: str, image_id: str) -> Image | None:
        for entry in self._load(region).entries:
            if entry.image.id == image_id:
                return entry.image.copy()
        return None

    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        raise FacadeError(f"{self.fullname(region)}: offline regions hold no image data")

    # -- writing ------------------------------------------------------------------------
    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        # source.chunks() is deliberately not consumed: there are no bytes offline, and
        # the master's checksum/hashes/size are what a real upload would end up with.
        owner = self.tenant_id()
        if image.visibility not in VISIBILITIES:
            raise FacadeError(
                f"{self.fullname(region)}: invalid visibility {image.visibility!r} "
                f"for image {image.name}"
            )
        reg = self._load(region)
        used = {entry.image.id for entry in reg.entries}
        name = source.master.name or image.name or ""  # ids read "1$debian", not temporary
        seq = 1
        while f"{seq}${name}" in used:
            seq += 1
        master = source.master
        new = Image(
            id=f"{seq}${name}",
            name=image.name,
            region=reg.fullname,
            owner=owner,
            visibility=image.visibility,
            checksum=master.checksum,
            size=master.size,
            status="active",
            properties=dict(image.properties),
            os_hash_algo=master.os_hash_algo,
            os_hash_value=master.os_hash_value,
            disk_format=image.disk_format,
            container_format=image.container_format,
            min_ram=image.min_ram,
            min_disk=image.min_disk,
            protected=image.protected,
            hidden=image.hidden,
        )
        reg.entries.append(_Entry(None, new))
        reg.save()
        return new.copy()

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        reg = self._load(region)
        i = reg.index(image_id)
        old = reg.entries[i].image
        name, visibility, properties = old.name, old.visibility, dict(old.properties)
        flags = {"protected": old.protected, "hidden": old.hidden}
        for key, value in changes.items():
            if key == "name":
                name = value
            elif key in ("protected", "os_hidden"):
                flags["hidden" if key == "os_hidden" else key] = bool(value)
            elif key == "visibility":
                if value not in VISIBILITIES:
                    raise FacadeError(
                        f"{reg.fullname}: invalid visibility {value!r} for image {image_id}"
                    )
                visibility = value
            elif not is_user_property(key):
                # Glance refuses to change core/reserved attributes through a property
                # patch; refusing here keeps offline runs as strict as real ones.
                raise FacadeError(
                    f"{reg.fullname}: {key!r} is not a user property (image {image_id})"
                )
            elif value is None:
                # Like glanceclient, removing an absent property is a no-op.
                properties.pop(key, None)
            else:
                properties[key] = value
        new = old.copy(name=name, visibility=visibility, properties=properties, **flags)
        if new != old:
            reg.entries[i] = _Entry(None, new)
            reg.save()

    def delete_image(self, region: str, image_id: str) -> None:
        reg = self._load(region)
        if image_id not in {entry.image.id for entry in reg.entries}:
            return  # gone already counts as deleted, as with Glance's 404
        i = reg.index(image_id)
        image = reg.entries[i].image
        if image.protected:
            # What Glance answers with a 403; the engine must report it, not assume it.
            raise FacadeError(f"{reg.fullname}: image {image.name} ({image_id}) is protected")
        del reg.entries[i]
        reg.save()

    # -- files --------------------------------------------------------------------------
    def _load(self, region: str) -> _RegionFile:
        fullname = self.fullname(region)
        filename = backup_filename(fullname)
        path = os.path.join(self.directory, filename)
        # A region name is never a path: "x/../y" or one with ":" (another target's
        # file, seen from master) is simply not one of our regions.
        separators = {":", "/", os.sep} | ({os.altsep} if os.altsep else set())
        if not region or any(sep in region for sep in separators) or not os.path.isfile(path):
            raise FacadeError(f"{fullname}: no file {filename} in {self.directory}")
        try:
            rows = read_backup_rows(path, region=fullname)
        except FacadeError as exc:
            raise FacadeError(f"{fullname}: {exc}") from exc
        return _RegionFile(fullname, path, [_Entry(row, image) for row, image in rows])
