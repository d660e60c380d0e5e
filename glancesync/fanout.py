"""Read each master image once and feed it to every region that needs it, at once.

Concurrency model: one process, threads. Each region of a run is synchronised by its own
thread (its executor applies its plan, in order). For every master image that two or
more regions upload in the run there is one :class:`_Broadcast`: when every region
expected to upload it has asked for its bytes (or has dropped out), one reader thread
reads the image from its source (``images_dir`` file or master API), hashes every chunk
once, and publishes it into a small window shared by all the regions' uploads:

* bounded memory: the reader is at most WINDOW chunks ahead of the slowest upload, and
  a chunk is shared (not copied) by the regions, so memory does not grow with the image
  size nor with the number of regions;
* backpressure: the slowest region sets the pace of the read;
* a region whose upload fails stops reading: the others go on without it; if every
  region stopped, the read stops too;
* the end of the image is held back by the reader until the bytes read have the master's
  size and hashes (ImageSource.chunks), so no region's Glance can activate wrong bytes:
  every upload is aborted with the same SourceMismatch.

Every region uploads its images in the same order (plan.RegionPlan.upload_order), so a
region that waits for the others to reach an image never waits for one that waits for
it. A region that needs the bytes a second time (a retried upload, a stale local file)
reads them again on its own: only failures cost extra reads of the master.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator

from glancesync.exceptions import FacadeError
from glancesync.image import Image
from glancesync.interrupt import StopToken
from glancesync.transfer import ImageSource

LOG = logging.getLogger("glancesync")

WINDOW = 4  # chunks the read may be ahead of the slowest upload (1 MiB each)
POLL = 0.5  # seconds between checks for an interruption while waiting

SourceOpener = Callable[[Image], ImageSource]


class FanOut:
    """The broadcasts of one run. ``expected``: master image id -> regions that upload it."""

    def __init__(self, expected: dict[str, set[str]], open_source: SourceOpener,
                 stop: StopToken | None = None) -> None:
        self._open = open_source
        self._stop = stop or StopToken()
        self._broadcasts = {
            image_id: _Broadcast(set(regions), self._stop)
            for image_id, regions in expected.items()
            if len(regions) >= 2
        }

    @property
    def shared_images(self) -> int:
        return len(self._broadcasts)

    def shared(self, region: str, master: Image) -> bool:
        """Whether ``region`` is one of the regions that share the read of ``master``."""
        broadcast = self._broadcasts.get(master.id)
        return broadcast is not None and broadcast.expects(region)

    def source(self, region: str, master: Image) -> ImageSource:
        """The bytes of ``master`` for ``region``: shared when others need them too."""
        broadcast = self._broadcasts.get(master.id)
        if broadcast is None or not broadcast.expects(region):
            return self._open(master)
        return SharedSource(master, region, broadcast, self._open)

    def done(self, region: str, master: Image) -> None:
        """``region`` is done with ``master`` (uploaded, failed or skipped)."""
        broadcast = self._broadcasts.get(master.id)
        if broadcast is not None:
            broadcast.withdraw(region)

    def leave(self, region: str) -> None:
        """``region`` stopped (finished, failed, interrupted): nobody waits for it."""
        for broadcast in self._broadcasts.values():
            broadcast.withdraw(region)


class _Broadcast:
    """One master image read once for several regions (see the module docstring)."""

    def __init__(self, expected: set[str], stop: StopToken) -> None:
        self._cond = threading.Condition()
        self._stop = stop
        self._expected = frozenset(expected)
        self._waiting = set(expected)  # expected regions that have not asked for bytes yet
        self._positions: dict[str, int] = {}  # reading region -> index of its next chunk
        self._chunks: deque[bytes] = deque()
        self._base = 0  # index of self._chunks[0]
        self._count = 0  # chunks published so far
        self._finished = False
        self._error: BaseException | None = None
        self._started = False
        self.source: ImageSource | None = None  # the reader's source (its hashes)

    def expects(self, region: str) -> bool:
        return region in self._expected

    def join(self, region: str, open_source: Callable[[], ImageSource]) -> bool:
        """``region`` starts reading; False when it is too late (the read has started)."""
        with self._cond:
            if self._started or region not in self._waiting:
                return False
            if self.source is None:
                self.source = open_source()  # the reader's own: no region resets its hashes
            self._waiting.discard(region)
            self._positions[region] = 0
            self._start_if_ready()
            return True

    def withdraw(self, region: str) -> None:
        with self._cond:
            self._waiting.discard(region)
            self._positions.pop(region, None)
            self._trim()
            self._start_if_ready()
            self._cond.notify_all()

    def _start_if_ready(self) -> None:
        # Everyone expected has asked (or dropped out): read once for all of them.
        if not self._started and not self._waiting and self._positions:
            self._started = True
            assert self.source is not None
            thread = threading.Thread(
                target=self._read, name=f"read {self.source.master.id}", daemon=True
            )
            thread.start()

    def _trim(self) -> None:
        """Forget the chunks every reading region has taken."""
        low = min(self._positions.values(), default=self._count)
        while self._base < low and self._chunks:
            self._chunks.popleft()
            self._base += 1

    def _read(self) -> None:
        assert self.source is not None
        chunks = self.source.chunks()
        try:
            for chunk in chunks:
                with self._cond:
                    while (
                        self._positions
                        and self._count - min(self._positions.values()) >= WINDOW
                        and not self._stop.stopping
                    ):
                        self._cond.wait(POLL)
                    if not self._positions or self._stop.stopping:
                        return  # nobody reads any more (failed, interrupted)
                    self._chunks.append(chunk)
                    self._count += 1
                    self._cond.notify_all()
            with self._cond:
                self._finished = True
                self._cond.notify_all()
        except BaseException as exc:  # handed to each region's upload, which reports it
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            chunks.close()  # type: ignore[attr-defined]  # a generator: ends the download

    def consume(self, region: str) -> Iterator[bytes]:
        try:
            while True:
                with self._cond:
                    while True:
                        position = self._positions.get(region)
                        if position is None:
                            return  # withdrawn
                        if position < self._count:
                            chunk = self._chunks[position - self._base]
                            self._positions[region] = position + 1
                            self._trim()
                            self._cond.notify_all()
                            break
                        if self._error is not None:
                            raise _copy_error(self._error, self.source)
                        if self._finished:
                            return
                        self._stop.check()
                        self._cond.wait(POLL)
                self._stop.check()  # chunks at hand: an interruption still stops here
                yield chunk
        finally:
            self.withdraw(region)


def _copy_error(error: BaseException, source: ImageSource | None) -> BaseException:
    """A fresh exception per region: one object raised in several threads at once would
    have its traceback rewritten by each."""
    if isinstance(error, FacadeError):
        return type(error)(str(error), error.transient)
    where = source.description if source is not None else "the source"
    text = " ".join(str(error).split()) or type(error).__name__
    return FacadeError(f"reading {where} failed: {text}")


class SharedSource:
    """One region's view of a shared read (the interface of ImageSource that uploads
    use); a second read (a retried upload, a fallback) is the region's own."""

    def __init__(self, master: Image, region: str, broadcast: _Broadcast,
                 open_source: SourceOpener) -> None:
        self.master = master
        self._region = region
        self._broadcast = broadcast
        self._open = open_source
        self._own: ImageSource | None = None
        self._shared_tried = False
        self._current: ImageSource | None = None

    def _own_source(self) -> ImageSource:
        if self._own is None:
            self._own = self._open(self.master)
        return self._own

    @property
    def description(self) -> str:
        if self._current is not None:
            return self._current.description
        return self._own_source().description

    def chunks(self) -> Iterator[bytes]:
        if not self._shared_tried:
            self._shared_tried = True
            if self._broadcast.join(self._region, lambda: self._open(self.master)):
                self._current = self._broadcast.source
                return self._broadcast.consume(self._region)
        self._current = self._own_source()
        return self._current.chunks()

    def fallback(self) -> bool:
        # The shared read failed for every region alike: from now on read on our own,
        # from the next place.
        self._shared_tried = True
        self._current = None
        return self._own_source().fallback()

    # What the new copy is checked against: the source whose bytes were sent.
    def _sent(self) -> ImageSource:
        return self._current if self._current is not None else self._own_source()

    @property
    def bytes_read(self) -> int:
        return self._sent().bytes_read

    @property
    def md5(self) -> str | None:
        return self._sent().md5

    @property
    def multihash(self) -> str | None:
        return self._sent().multihash

    def check_copy(self, copy: Image) -> str | None:
        return self._sent().check_copy(copy)
