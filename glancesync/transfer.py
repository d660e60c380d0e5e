"""Where image bytes come from: ``images_dir/<master id>`` if readable, else the master API.

Bytes are streamed in chunks (constant memory, no temporary file) and hashed on the way,
so an upload can be checked against the master's checksum and multihash.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

from glancesync.exceptions import FacadeError
from glancesync.facade.base import Facade
from glancesync.image import Image

CHUNK_SIZE = 1024 * 1024


class ImageSource:
    """The bytes of one master image, as an iterator of chunks hashed while read."""

    def __init__(
        self, master: Image, description: str, opener: Callable[[], Iterator[bytes]]
    ) -> None:
        self.master = master
        self.description = description
        self._opener = opener
        self.bytes_read = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        algo = master.os_hash_algo
        self._multihash = hashlib.new(algo) if algo and algo in hashlib.algorithms_available else None

    def chunks(self) -> Iterator[bytes]:
        for chunk in self._opener():
            self._md5.update(chunk)
            if self._multihash is not None:
                self._multihash.update(chunk)
            self.bytes_read += len(chunk)
            yield chunk

    def verify(self, region: str) -> None:
        """After the bytes were consumed: they must be the master's (size and hashes)."""
        master = self.master
        problems = []
        if master.size and self.bytes_read != master.size:
            problems.append(f"read {self.bytes_read} bytes, master size is {master.size}")
        if master.checksum and self._md5.hexdigest() != master.checksum:
            problems.append(f"md5 {self._md5.hexdigest()} != master checksum {master.checksum}")
        if (
            self._multihash is not None
            and master.os_hash_value
            and self._multihash.hexdigest() != master.os_hash_value
        ):
            problems.append(f"{master.os_hash_algo} of the bytes read differs from the master's")
        if problems:
            raise FacadeError(
                f"{region}: image {master.name} read from {self.description} is not the "
                f"master's content: {'; '.join(problems)}"
            )


def source_for(
    master: Image, images_dir: str | None, master_facade: Facade, master_region: str
) -> ImageSource:
    path = os.path.join(images_dir, master.id) if images_dir else None
    if path and os.path.isfile(path) and os.access(path, os.R_OK):
        return ImageSource(master, f"file {path}", lambda: _read_file(path))
    return ImageSource(
        master,
        f"master region {master_region}",
        lambda: master_facade.download(master_region, master.id),
    )


def _read_file(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk
