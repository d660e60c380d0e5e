"""Where image bytes come from: ``images_dir/<master id>`` if readable, else the master API.

Bytes are streamed in chunks (constant memory, no temporary file) and hashed on the way,
so an upload can be checked against the master's checksum and multihash. Progress shows
as a tqdm bar on a terminal, as an occasional log line otherwise (cron logs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from glancesync.exceptions import SourceMismatch
from glancesync.facade.base import Facade
from glancesync.image import Image
from glancesync.interrupt import StopToken
from glancesync.units import format_rate, format_size

CHUNK_SIZE = 1024 * 1024
PROGRESS_LOG_INTERVAL = 30.0  # seconds between progress lines when not on a terminal

LOG = logging.getLogger("glancesync")


class ImageSource:
    """The bytes of one master image, as an iterator of chunks hashed while read.

    ``openers``: where the bytes can come from, in order of preference, as
    (description, opener) pairs; :meth:`fallback` moves to the next one (a local file
    that turned out stale falls back to the master API).

    The end of the stream is held back: the last chunk is only released once the bytes
    read have the master's size and hashes, so an upload of wrong bytes is aborted before
    Glance can activate it.

    ``progress``: True = a tqdm bar; False = a log line every PROGRESS_LOG_INTERVAL
    seconds; None = a bar when stderr and the "glancesync" log both go to a terminal.
    """

    def __init__(
        self,
        master: Image,
        description: str,
        opener: Callable[[], Iterator[bytes]],
        progress: bool | None = None,
        fallbacks: list[tuple[str, Callable[[], Iterator[bytes]]]] | None = None,
        stop: StopToken | None = None,
    ) -> None:
        self.master = master
        self._stop = stop  # read in a thread of a run: an interruption stops the read
        self.description = description
        self._opener = opener
        self._fallbacks = list(fallbacks or [])
        self._progress = progress
        self._reset()

    def fallback(self) -> bool:
        """Read from the next place from now on; False when there is none."""
        if not self._fallbacks:
            return False
        self.description, self._opener = self._fallbacks.pop(0)
        return True

    def _reset(self) -> None:
        self.bytes_read = 0
        # Without a master hash, the copy is checked against what we read: Glance's
        # default multihash is sha512.
        algo = self.master.os_hash_algo or "sha512"
        self.hash_algo = algo if algo in hashlib.algorithms_available else None
        self._multihash = hashlib.new(algo) if self.hash_algo else None
        # Hashing is most of the CPU a transfer costs us. When the master's own multihash
        # is checked, an md5 of the same bytes adds no safety: it is only computed when
        # there is no such hash (then it is what the region's checksum is compared to).
        checked = bool(self.master.os_hash_value) and self._multihash is not None
        self._md5 = None if checked else hashlib.md5(usedforsecurity=False)

    def chunks(self) -> Iterator[bytes]:
        # Every read starts from scratch, so a retried upload is hashed correctly.
        self._reset()
        progress = _progress_for(self)
        iterator = self._opener()
        held: bytes | None = None
        try:
            for chunk in iterator:
                if self._stop is not None:
                    self._stop.check()
                if not chunk:
                    continue
                if self._md5 is not None:
                    self._md5.update(chunk)
                if self._multihash is not None:
                    self._multihash.update(chunk)
                self.bytes_read += len(chunk)
                progress.update(len(chunk))
                if held is not None:
                    yield held
                held = chunk
            self.verify()  # raises before the end of the body is released
            if held is not None:
                yield held
        finally:
            # Stopped early (failed upload): release the master download connection now.
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
            progress.close()

    @property
    def md5(self) -> str | None:
        return self._md5.hexdigest() if self._md5 is not None else None

    @property
    def multihash(self) -> str | None:
        return self._multihash.hexdigest() if self._multihash is not None else None

    def verify(self, region: str = "") -> None:
        """After the bytes were consumed: they must be the master's (size and hashes)."""
        master = self.master
        problems = []
        if master.size and self.bytes_read != master.size:
            problems.append(f"read {self.bytes_read} bytes, master size is {master.size}")
        if master.checksum and self.md5 is not None and self.md5 != master.checksum:
            problems.append(f"md5 {self.md5} != master checksum {master.checksum}")
        if master.os_hash_value and self.multihash not in (None, master.os_hash_value):
            problems.append(f"{master.os_hash_algo} of the bytes read differs from the master's")
        if problems:
            prefix = f"{region}: " if region else ""
            raise SourceMismatch(
                f"{prefix}image {master.name} read from {self.description} is not the "
                f"master's content: {'; '.join(problems)}"
            )

    def check_copy(self, copy: Image) -> str | None:
        """Why the region's new ``copy`` is not the master's content (None: it is).

        Against the master's hashes when it has them, else against the hashes of the
        bytes we sent (a master image made from a location or a snapshot may have none).
        """
        master = self.master
        if copy.status != "active":
            return f"its status is {copy.status!r}, not active"
        if master.size and copy.size and copy.size != master.size:
            return f"its size is {copy.size}, the master's {master.size}"
        if master.content_ids():
            if copy.same_content(master):
                return None
            return (
                f"checksum {copy.checksum}, master {master.checksum}"
                + (f" ({master.os_hash_algo} differs)" if master.os_hash_value else "")
            )
        sent = Image(
            id="", name=master.name, checksum=self.md5,
            os_hash_algo=self.hash_algo, os_hash_value=self.multihash,
        )  # fmt: skip
        if copy.content_ids() and copy.same_content(sent):
            return None
        return f"checksum {copy.checksum}, but the bytes sent have md5 {self.md5}"


def source_for(
    master: Image,
    images_dir: str | None,
    master_facade: Facade,
    master_region: str,
    progress: bool | None = None,
    stop: StopToken | None = None,
) -> ImageSource:
    """Bytes from ``images_dir/<master id>`` when usable, else from the master's API.

    A file whose size differs from the master's is stale: it is not used at all. A file
    of the right size that hashes differently is noticed at the end of the read (the
    upload is aborted) and the upload is retried from the master API.
    """

    def from_api() -> Iterator[bytes]:
        return master_facade.download(master_region, master.id)

    api = (f"master region {master_region}", from_api)
    path = os.path.join(images_dir, master.id) if images_dir else None
    if path and os.path.isfile(path) and os.access(path, os.R_OK):
        size = os.path.getsize(path)
        if not master.size or size == master.size:
            return ImageSource(
                master, f"file {path}", lambda: _read_file(path), progress, [api], stop
            )
        LOG.warning(
            "File %s has %d bytes, master image %s has %d: reading it from master region %s",
            path, size, master.name, master.size, master_region,
        )  # fmt: skip
    return ImageSource(master, api[0], api[1], progress, stop=stop)


def _read_file(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            yield chunk


# -- progress ---------------------------------------------------------------------------
def _progress_for(source: ImageSource) -> _BarProgress | _LogProgress:
    wanted = source._progress
    if wanted is None:
        wanted = sys.stderr.isatty() and _logging_to_terminal()
    if wanted:
        return _BarProgress(source)
    return _LogProgress(source)


def _logging_to_terminal() -> bool:
    """Whether our log lines go to a terminal too (a --parallel child logs to a file).

    Without this, the bars of several children would interleave on the one terminal while
    their log files got no progress at all.
    """
    logger: logging.Logger | None = LOG
    while logger is not None:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if not isinstance(handler, logging.FileHandler) and _isatty(stream):
                return True
        logger = logger.parent if logger.propagate else None
    return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _BarProgress:
    def __init__(self, source: ImageSource) -> None:
        from tqdm import tqdm  # only interactive runs need it

        self._bar: Any = tqdm(
            total=source.master.size or None,
            desc=str(source.master.name),
            unit="iB",  # with unit_divisor=1024: KiB, MiB, GiB, as the log lines write
            unit_scale=True,
            unit_divisor=1024,
            leave=False,  # the executor logs the outcome; a finished bar is noise
            file=sys.stderr,
        )

    def update(self, n: int) -> None:
        self._bar.update(n)

    def close(self) -> None:
        self._bar.close()


class _LogProgress:
    """A line every PROGRESS_LOG_INTERVAL seconds: quiet for small images, alive for big."""

    def __init__(self, source: ImageSource) -> None:
        self._source = source
        self._start = self._last = time.monotonic()

    def update(self, n: int) -> None:
        now = time.monotonic()
        if now - self._last < PROGRESS_LOG_INTERVAL:
            return
        self._last = now
        done = self._source.bytes_read
        total = self._source.master.size
        share = f"{100 * done // total}% of " if total else ""
        LOG.info(
            "Transferring %s from %s: %s%s, %s",
            self._source.master.name,
            self._source.description,
            share,
            format_size(total or done),
            format_rate(done, now - self._start),
        )

    def close(self) -> None:
        pass
