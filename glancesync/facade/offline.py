"""Regions kept as backup CSV files in a directory: scenario tests and what-if runs.

``DIR/backup_<fullname>.csv`` is one region (backup CSV rows), so any directory written by
``--make-backup`` (ours or the 2015 tool's) can be synchronised offline. Files of the
master target have no ``:`` in their region part; ``backup_T:Madrid.csv`` is region
Madrid of target T.

Each region file is read once and kept in memory; it is read again only when it changed
on disk and this facade holds no unsaved change of it. Changes are made in memory and
written by :meth:`OfflineFacade.flush`, the whole file at once and atomically
(glancesync.backup.write_csv_atomic): the runner flushes a region when its sync ends,
failed or interrupted too, so a run costs one read and at most one write per region
however many images change, and the file always holds either the state before the sync
or the state after it, never half of one. Another facade (a later run, a forked
child) sees the changes once they are flushed. Two processes changing the SAME region at
once are not serialised (last writer wins), which the runner never does. One facade may
be used from several threads: each region has its own lock.

Offline regions hold metadata only: an upload records the master's checksum, hashes and
size without reading any bytes, and download is refused.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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
class _RegionFile:
    """One region file as this facade knows it; use it only while holding ``lock``."""

    fullname: str
    path: str
    filename: str
    directory: str
    # image id -> image, in file order (uploads are appended, as in the file). Images are
    # never changed in place (a change stores a new Image), so listings share them.
    images: dict[str, Image] = field(default_factory=dict)
    # image id -> its row as read, written back as is while the image is untouched: a
    # rewrite only changes the lines of the images that changed (9-field rows stay so)
    rows: dict[str, list[str]] = field(default_factory=dict)
    loaded: bool = False
    dirty: bool = False  # changed in memory, not written yet
    # (inode, size, mtime) of the file when last read or written: another change shows
    stamp: tuple[int, int, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _stat(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            raise FacadeError(f"{self.fullname}: no file {self.filename} in {self.directory}")
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def refresh(self, keep_rows: bool) -> None:
        """Read the file unless what is in memory is still what it holds (or is newer)."""
        stamp = self._stat()  # before reading: a change meanwhile shows next time
        if self.loaded and (self.dirty or stamp == self.stamp):
            return
        try:
            self.images, self.rows = read_backup_rows(
                self.path, region=self.fullname, keep_rows=keep_rows
            )
        except FacadeError as exc:  # the same kind (a malformed file stays BadInput)
            raise type(exc)(f"{self.fullname}: {exc}") from exc
        self.loaded, self.stamp = True, stamp

    def image(self, image_id: str) -> Image:
        try:
            return self.images[image_id]
        except KeyError:
            raise FacadeError(f"{self.fullname}: no image with id {image_id}") from None

    def put(self, image: Image) -> None:
        """Store a new or changed image (a changed one keeps its place in the file)."""
        self.images[image.id] = image
        self.rows.pop(image.id, None)
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        read = self.rows
        rows = [read.get(i) or image.to_csv_row() for i, image in self.images.items()]
        write_csv_atomic(self.path, rows)  # raises: still dirty, a later flush retries
        self.dirty = False
        try:
            self.stamp = self._stat()
        except FacadeError:
            self.stamp = None


class OfflineFacade(Facade):
    streams_bytes = False  # an upload records the master's hashes without reading bytes
    local = True

    def __init__(
        self,
        target_name: str,
        directory: str,
        tenant_id: str | None = None,
        tenant_name: str | None = None,
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(target_name)
        if not os.path.isdir(directory):
            raise ConfigError(f"offline mode: {directory} is not a directory")
        self.directory = directory
        self._tenant_id = tenant_id
        self._tenant_name = tenant_name
        # For a status, a dry run, a backup: every write is refused, and the rows as read
        # (kept only to write untouched lines back as they were) are not kept.
        self.read_only = read_only
        self._files: dict[str, _RegionFile] = {}
        self._files_lock = threading.Lock()  # guards _files itself, not the regions

    @classmethod
    def for_target(
        cls, target: TargetConfig, directory: str, read_only: bool = False
    ) -> OfflineFacade:
        """The facade for a configured target; the tenant name is the project name."""
        creds = target.credentials
        tenant_name = creds.project_name
        if creds.from_environment and not creds.cloud:
            # OS_* credentials stay in the environment (openstacksdk reads them online).
            tenant_name = os.environ.get("OS_PROJECT_NAME") or os.environ.get("OS_TENANT_NAME")
        return cls(target.name, directory, target.tenant_id, tenant_name, read_only=read_only)

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
            # The 2015 tool's offline convention: tenant "tenant1" has id "tenant1id".
            return f"{self._tenant_name}id"
        raise ConfigError(
            f"offline mode: target [{self.target_name}] needs tenant_id or a tenant name "
            "(tenant/credential option or OS_PROJECT_NAME)"
        )

    def list_images(self, region: str) -> list[Image]:
        # The facade's own images: it never changes them in place, and neither may the
        # caller (Image.copy makes a changed one). No copy: planning a region of thousands
        # of images lists it whole.
        with self._region(region) as reg:
            return list(reg.images.values())

    def get_image(self, region: str, image_id: str) -> Image | None:
        with self._region(region) as reg:
            image = reg.images.get(image_id)
            return image.copy() if image else None

    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        raise FacadeError(f"{self.fullname(region)}: offline regions hold no image data")

    # -- writing ------------------------------------------------------------------------
    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        # source.chunks() is deliberately not consumed: there are no bytes offline, and
        # the master's checksum/hashes/size are what a real upload would end up with.
        self._writable(region)
        owner = self.tenant_id()
        if image.visibility not in VISIBILITIES:
            raise FacadeError(
                f"{self.fullname(region)}: invalid visibility {image.visibility!r} "
                f"for image {image.name}"
            )
        with self._region(region) as reg:
            name = source.master.name or image.name or ""  # ids read "1$debian", not temporary
            seq = 1
            while f"{seq}${name}" in reg.images:
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
            reg.put(new)
            return new.copy()

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        self._writable(region)
        with self._region(region) as reg:
            old = reg.image(image_id)
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
                reg.put(new)

    def delete_image(self, region: str, image_id: str) -> None:
        self._writable(region)
        with self._region(region) as reg:
            image = reg.images.get(image_id)
            if image is None:
                return  # gone already counts as deleted, as with Glance's 404
            if image.protected:
                # What Glance answers with a 403; the engine must report it, not assume it.
                raise FacadeError(f"{reg.fullname}: image {image.name} ({image_id}) is protected")
            del reg.images[image_id]
            reg.rows.pop(image_id, None)
            reg.dirty = True

    def flush(self, region: str | None = None) -> None:
        """Write the changes of ``region`` (default: every region) to its file, atomically.

        A region without changes is not written. On an error (disk full...) the changes
        stay in memory and the next flush tries again.
        """
        with self._files_lock:
            if region is None:
                files = list(self._files.values())
            else:
                files = [f for f in (self._files.get(region),) if f is not None]
        for reg in files:
            with reg.lock:
                reg.save()

    def forget(self, region: str) -> None:
        """Drop the region's file from memory unless it holds unsaved changes."""
        with self._files_lock:
            reg = self._files.get(region)
            if reg is not None and not reg.dirty:
                del self._files[region]

    def _writable(self, region: str) -> None:
        if self.read_only:
            raise FacadeError(f"{self.fullname(region)}: read-only here (nothing is written)")

    # -- files --------------------------------------------------------------------------
    @contextmanager
    def _region(self, region: str) -> Iterator[_RegionFile]:
        """The region's file, up to date and locked for the caller."""
        with self._files_lock:
            reg = self._files.get(region)
            if reg is None:
                fullname = self.fullname(region)
                filename = backup_filename(fullname)
                # A region name is never a path: "x/../y" or one with ":" (another
                # target's file, seen from master) is simply not one of our regions.
                separators = {":", "/", os.sep} | ({os.altsep} if os.altsep else set())
                if not region or any(sep in region for sep in separators):
                    raise FacadeError(f"{fullname}: no file {filename} in {self.directory}")
                path = os.path.join(self.directory, filename)
                reg = _RegionFile(fullname, path, filename, self.directory)
                self._files[region] = reg
        with reg.lock:
            reg.refresh(keep_rows=not self.read_only)
            yield reg
