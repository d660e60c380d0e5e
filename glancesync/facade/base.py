"""The small interface the engine needs from a cloud (one facade per target).

Everything that talks to a region goes through these methods; the engine never reaches
past them. Regions are named by their plain name here ("Madrid"); the facade fills
``Image.region`` with the fullname it is given at construction (``target:region`` for
non-master targets) through :meth:`fullname`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from glancesync.image import Image
    from glancesync.transfer import ImageSource

# Metadata changes: "name" and "visibility" (strings), "os_hidden" and "protected"
# (booleans) set those attributes; any other key is a user property, whose value None
# removes it. Nothing else is ever sent.
MetadataChanges = dict[str, "str | bool | None"]
CORE_CHANGES = ("name", "visibility", "os_hidden", "protected")


def region_fullname(target: str, region: str) -> str:
    """How users and logs name a region: ``Burgos`` in the master target, else ``other:Madrid``."""
    return region if target == "master" else f"{target}:{region}"


class Facade(ABC):
    # Whether uploads read the image bytes (False: the region records metadata only, so
    # there is nothing to share between regions).
    streams_bytes = True
    # Whether the regions are local files only (no connection a forked process would
    # share with its parent): offline status planning then forks worker processes.
    local = False

    def __init__(self, target_name: str) -> None:
        self.target_name = target_name

    def fullname(self, region: str) -> str:
        return region_fullname(self.target_name, region)

    def forget(self, region: str) -> None:  # noqa: B027 (optional: most keep nothing)
        """Drop what is kept in memory about ``region`` (nothing by default)."""

    @abstractmethod
    def regions(self) -> list[str]:
        """Plain names of the regions of this target that have an image service."""

    @abstractmethod
    def tenant_id(self) -> str:
        """The project id images uploaded through this facade are owned by."""

    @abstractmethod
    def list_images(self, region: str) -> list[Image]:
        """Every image the region lists to us (public, own, shared, hidden), any status."""

    @abstractmethod
    def get_image(self, region: str, image_id: str) -> Image | None:
        """The image as the region reports it now; None when it does not exist."""

    @abstractmethod
    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        """Create an image with ``image``'s metadata and upload ``source``'s bytes.

        Sent at create: name, visibility, os_hidden (``image.hidden``), properties,
        disk_format, container_format, min_ram, min_disk; never protected. Returns the new
        image as the region reports it after the upload (checksum and hash filled). On any
        failure after the create (an interruption too) the created image is deleted before
        the error is raised; FacadeError.transient says whether trying again may work.
        """

    @abstractmethod
    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        """Apply exactly ``changes`` (see MetadataChanges); raises FacadeError."""

    @abstractmethod
    def delete_image(self, region: str, image_id: str) -> None:
        """Delete one image (one already gone counts as deleted); raises FacadeError."""

    def flush(self, region: str | None = None) -> None:
        """Make the changes made so far in ``region`` (default: all) durable.

        A facade that writes every change at once (a cloud) has nothing to do; one that
        holds changes back (the offline facade) writes them here. The runner calls it when
        a region's sync ends, however it ends, and when the run ends.
        """
        return None

    @abstractmethod
    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        """Stream an image's bytes in chunks (used to read from the master region)."""

    # -- server-side copy (optional) --------------------------------------------------
    def server_copy_unavailable(self, region: str, source_region: str) -> str | None:
        """Why ``region`` cannot copy images from ``source_region`` itself (None: it can).

        Only asked when both regions are reached through this facade's Keystone.
        """
        return "not supported by this kind of region"

    def copy_from_region(
        self, region: str, image: Image, source_region: str, source_id: str
    ) -> Image:
        """Create ``image`` (as upload_image does) and have the region fill it with the
        bytes of image ``source_id`` of ``source_region``, read by the region itself.

        Returns the new image once active (checksum and hash computed by the region).
        On any failure the created image is deleted before FacadeError is raised.
        """
        raise NotImplementedError
