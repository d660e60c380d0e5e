"""Fan-out: each master image read once for every region that needs it in a run.

The broadcast itself is driven with plain chunk generators; whole runs go through the
Runner with file-backed regions whose facade really consumes the upload stream (and
counts the master's downloads), so the tests see what a run with real clouds would do:
how often the master is read, what each region ends up with, which regions fail.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from glancesync.backup import write_csv_atomic
from glancesync.config import Settings, TargetConfig
from glancesync.exceptions import FacadeError, Interrupted, SourceMismatch
from glancesync.facade.offline import OfflineFacade
from glancesync.fanout import WINDOW, FanOut
from glancesync.image import Image
from glancesync.interrupt import StopToken
from glancesync.runner import RegionRef, Runner
from glancesync.transfer import ImageSource

MASTER = "Valladolid"
TENANT = "tenant1id"
MiB = 1024 * 1024
REGIONS = ["Burgos", "Caceres", "Leon"]


def content(name: str, chunks: int) -> bytes:
    return hashlib.sha512(name.encode()).digest() * (chunks * MiB // 64)


def master_image(name: str, data: bytes, **kw) -> Image:
    return Image(
        id=f"id-{name}",
        name=name,
        region=MASTER,
        owner=TENANT,
        visibility="public",
        checksum=kw.pop("checksum", hashlib.md5(data).hexdigest()),
        os_hash_algo="sha512",
        os_hash_value=kw.pop("os_hash_value", hashlib.sha512(data).hexdigest()),
        size=len(data),
        status="active",
        **kw,
    )


# -- the broadcast ------------------------------------------------------------------------
class Reads:
    """Sources over in-memory images; counts how many times each is opened and how far
    the read went."""

    def __init__(self, images: dict[str, bytes]) -> None:
        self.images = images
        self.opened: Counter[str] = Counter()
        self.produced = 0

    def open(self, master: Image) -> ImageSource:
        def chunks() -> Iterator[bytes]:
            self.opened[master.id] += 1
            data = self.images[master.id]
            for start in range(0, len(data), MiB):
                self.produced += 1
                yield data[start : start + MiB]

        return ImageSource(master, "memory", chunks, progress=False)


def read_all(fanout: FanOut, region: str, master: Image, out: dict, delay: float = 0.0) -> None:
    source = fanout.source(region, master)
    received = bytearray()
    try:
        for chunk in source.chunks():
            received += chunk
            time.sleep(delay)
        out[region] = bytes(received)
    except BaseException as exc:
        out[region] = exc
    finally:
        fanout.done(region, master)


def run_threads(*calls) -> None:
    threads = [threading.Thread(target=fn, args=args) for fn, *args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_three_regions_get_the_bytes_of_one_read():
    data = content("debian", 6)
    master = master_image("debian", data)
    reads = Reads({master.id: data})
    fanout = FanOut({master.id: set(REGIONS)}, reads.open)
    out: dict = {}
    run_threads(*[(read_all, fanout, region, master, out) for region in REGIONS])
    assert reads.opened == {master.id: 1}
    assert out == {region: data for region in REGIONS}


def test_the_slowest_region_sets_the_pace_and_memory_stays_within_the_window():
    data = content("big", 24)
    master = master_image("big", data)
    reads = Reads({master.id: data})
    fanout = FanOut({master.id: {"fast", "slow"}}, reads.open)
    ahead: list[int] = []
    out: dict = {}

    def slow() -> None:
        source = fanout.source("slow", master)
        received = bytearray()
        for chunk in source.chunks():
            received += chunk
            ahead.append(reads.produced - len(received) // MiB)
            time.sleep(0.01)
        out["slow"] = bytes(received)

    run_threads((read_all, fanout, "fast", master, out), (slow,))
    assert out == {"fast": data, "slow": data}
    # The reader is never more than the window (+ the chunk it holds back, + the one
    # in its hand) ahead of the slowest region, whatever the size of the image.
    assert max(ahead) <= WINDOW + 2


def test_a_region_that_stops_reading_does_not_stop_the_others():
    data = content("debian", 8)
    master = master_image("debian", data)
    reads = Reads({master.id: data})
    fanout = FanOut({master.id: set(REGIONS)}, reads.open)
    out: dict = {}

    def failing() -> None:
        source = fanout.source("Caceres", master)
        chunks = source.chunks()
        next(chunks)
        next(chunks)
        chunks.close()  # type: ignore[attr-defined]  # the upload failed half-way
        fanout.done("Caceres", master)

    run_threads(
        (read_all, fanout, "Burgos", master, out, 0.002),
        (failing,),
        (read_all, fanout, "Leon", master, out),
    )
    assert out == {"Burgos": data, "Leon": data}
    assert reads.opened == {master.id: 1}


def test_wrong_bytes_abort_every_region_before_the_end_of_the_image():
    data = content("debian", 4)
    master = master_image("debian", data, os_hash_value="0" * 128)
    reads = Reads({master.id: data})
    fanout = FanOut({master.id: {"Burgos", "Leon"}}, reads.open)
    received: Counter[str] = Counter()
    errors: dict = {}

    def upload(region: str) -> None:
        try:
            for chunk in fanout.source(region, master).chunks():
                received[region] += len(chunk)
        except SourceMismatch as exc:
            errors[region] = str(exc)

    run_threads((upload, "Burgos"), (upload, "Leon"))
    assert sorted(errors) == ["Burgos", "Leon"]
    assert "is not the master's content" in errors["Burgos"]
    # The last chunk was held back: no region got the whole image.
    assert received == {"Burgos": len(data) - MiB, "Leon": len(data) - MiB}


def test_a_region_that_never_comes_does_not_block_the_read():
    data = content("debian", 3)
    master = master_image("debian", data)
    reads = Reads({master.id: data})
    fanout = FanOut({master.id: {"Burgos", "Leon"}}, reads.open)
    out: dict = {}
    thread = threading.Thread(target=read_all, args=(fanout, "Burgos", master, out))
    thread.start()
    time.sleep(0.2)
    assert out == {}  # waits for Leon, which is expected
    fanout.leave("Leon")  # Leon stopped before reaching this image
    thread.join(10)
    assert out == {"Burgos": data}


def test_a_second_read_by_one_region_is_its_own():
    data = content("debian", 2)
    master = master_image("debian", data)
    reads = Reads({master.id: data})
    fanout = FanOut({master.id: {"Burgos", "Leon"}}, reads.open)
    out: dict = {}
    run_threads(*[(read_all, fanout, region, master, out) for region in ("Burgos", "Leon")])
    retry = fanout.source("Burgos", master)
    assert b"".join(retry.chunks()) == data  # e.g. a retried upload
    assert reads.opened == {master.id: 2}


def test_an_interruption_stops_a_region_waiting_for_the_others():
    data = content("debian", 2)
    master = master_image("debian", data)
    stop = StopToken()
    fanout = FanOut({master.id: {"Burgos", "Leon"}}, Reads({master.id: data}).open, stop)
    out: dict = {}
    thread = threading.Thread(target=read_all, args=(fanout, "Burgos", master, out))
    thread.start()
    time.sleep(0.1)
    stop.stop(Interrupted(15, "SIGTERM"))
    thread.join(10)
    assert isinstance(out["Burgos"], Interrupted)
    assert out["Burgos"].exit_code == 143


# -- whole runs --------------------------------------------------------------------------
class StreamingRegions(OfflineFacade):
    """File-backed regions whose uploads read the stream, like Glance does: the copy's
    checksum is that of the bytes received. The master's bytes come from ``data``."""

    streams_bytes = True

    def __init__(self, directory: Path, data: dict[str, bytes], fail: dict[str, int]) -> None:
        super().__init__("master", str(directory), tenant_id=TENANT)
        self.data = data
        self.fail = fail  # region -> chunks after which its uploads break
        self.downloads: Counter[str] = Counter()
        self._lock = threading.Lock()

    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        assert region == MASTER
        with self._lock:
            self.downloads[image_id] += 1
        data = self.data[image_id]
        for start in range(0, len(data), MiB):
            yield data[start : start + MiB]

    def upload_image(self, region: str, image: Image, source) -> Image:
        md5 = hashlib.md5()
        chunks = source.chunks()
        try:
            for n, chunk in enumerate(chunks, 1):
                md5.update(chunk)
                if n == self.fail.get(region):
                    raise FacadeError(f"{region}: Upload of {image.name} failed. Cause: HTTP 500")
        finally:
            chunks.close()
        created = super().upload_image(region, image, source)
        return created.copy(checksum=md5.hexdigest())


class Run:
    def __init__(self, tmp_path: Path, fail: dict[str, int] | None = None) -> None:
        self.dir = tmp_path / "regions"
        self.dir.mkdir()
        self.images = {name: content(name, chunks) for name, chunks in
                       (("cirros", 2), ("debian", 5), ("ubuntu", 3))}  # fmt: skip
        masters = [master_image(name, data) for name, data in self.images.items()]
        self.write(MASTER, masters)
        for region in REGIONS:
            self.write(region, [])
        data = {m.id: self.images[m.name or ""] for m in masters}
        self.facade = StreamingRegions(self.dir, data, fail or {})
        settings = Settings(
            master_region=MASTER,
            targets={"master": TargetConfig("master", tenant_id=TENANT)},
            images_dir=str(tmp_path / "no-images-dir"),
        )
        self.runner = Runner(settings, lambda target: self.facade)
        self.refs = [RegionRef("master", region) for region in REGIONS]

    def write(self, region: str, images: list[Image]) -> None:
        write_csv_atomic(str(self.dir / f"backup_{region}.csv"), [i.to_csv_row() for i in images])

    def checksums(self, region: str) -> dict[str | None, str | None]:
        return {i.name: i.checksum for i in OfflineFacade("master", str(self.dir),
                                                           tenant_id=TENANT).list_images(region)}

    def expected(self) -> dict[str | None, str | None]:
        return {name: hashlib.md5(data).hexdigest() for name, data in self.images.items()}


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="glancesync")
    return caplog


def test_a_sync_of_three_regions_reads_each_master_image_once(tmp_path, log):
    run = Run(tmp_path)
    try:
        assert run.runner.sync(run.refs, dry_run=False) == 0
    finally:
        run.runner.close()
    assert run.facade.downloads == {"id-cirros": 1, "id-debian": 1, "id-ubuntu": 1}
    for region in REGIONS:
        assert run.checksums(region) == run.expected(), region
    lines = [record.getMessage() for record in log.records]
    assert lines[0] == "======Master is Valladolid"
    assert {f"======{region}" for region in REGIONS} <= set(lines)
    # Regions run together: every line until the summary says which region it is about.
    for line in lines[1 : lines.index("======Summary")]:
        assert any(region in line for region in REGIONS), line


def test_a_region_failing_mid_upload_does_not_disturb_the_others(tmp_path, log):
    run = Run(tmp_path, fail={"Caceres": 3})
    try:
        assert run.runner.sync(run.refs, dry_run=False) == 1
    finally:
        run.runner.close()
    assert run.checksums("Burgos") == run.expected()
    assert run.checksums("Leon") == run.expected()
    # Caceres' uploads break at their third chunk: it got the 2-chunk image only, and no
    # temporary copy is left behind.
    assert run.checksums("Caceres") == {"cirros": run.expected()["cirros"]}
    assert run.facade.downloads == {"id-cirros": 1, "id-debian": 1, "id-ubuntu": 1}
    failed = [r.getMessage() for r in log.records if r.levelname == "ERROR"]
    assert failed and all("Caceres" in line for line in failed)


def test_parallel_reads_once_and_logs_each_region_to_its_file(tmp_path, log):
    run = Run(tmp_path)
    try:
        assert run.runner.sync_parallel(run.refs, dry_run=False, base=str(tmp_path)) == 0
    finally:
        run.runner.close()
    assert run.facade.downloads == {"id-cirros": 1, "id-debian": 1, "id-ubuntu": 1}
    [logdir] = tmp_path.glob("sync_*")
    logs = {p.name: p.read_text() for p in logdir.iterdir()}
    assert sorted(logs) == [f"{region}.txt" for region in REGIONS]
    for region in REGIONS:
        assert f"INFO:{region}: Uploading image debian (5.0 MiB)" in logs[f"{region}.txt"]
        others = [r for r in REGIONS if r != region]
        assert not any(other in logs[f"{region}.txt"] for other in others)
    lines = [record.getMessage() for record in log.records]
    assert sorted(line for line in lines if line.startswith("Region ")) == [
        f"Region {region} has finished" for region in REGIONS
    ]
    assert "All is done." in lines


# -- server-side copy -----------------------------------------------------------------------
class PullingRegions(StreamingRegions):
    """Regions that can copy from the master themselves; ``broken``: those whose copies
    fail (e.g. their import filter refuses the master's address)."""

    def __init__(self, *args, broken: set[str], wrong: set[str] | None = None) -> None:
        super().__init__(*args)
        self.broken = broken
        self.wrong = wrong or set()
        self.pulled: list[tuple[str, str | None]] = []

    def server_copy_unavailable(self, region: str, source_region: str) -> str | None:
        return None

    def copy_from_region(self, region, image, source_region, source_id):
        assert source_region == MASTER
        if region in self.broken:
            raise FacadeError(f"{region}: Server-side copy of {image.name} failed. Cause: 403")
        self.pulled.append((region, image.name))
        source = ImageSource(image, "nowhere", lambda: iter(()))
        created = OfflineFacade.upload_image(self, region, image, source)
        data = self.data[source_id]
        checksum = "0" * 32 if region in self.wrong else hashlib.md5(data).hexdigest()
        return created.copy(checksum=checksum, size=len(data), os_hash_value=(
            None if region in self.wrong else hashlib.sha512(data).hexdigest()))


def pulling_run(tmp_path: Path, broken: set[str], wrong: set[str] | None = None,
                server_side_copy: bool = True) -> Run:
    run = Run(tmp_path)
    masters = [master_image(n, d, disk_format="qcow2", container_format="bare")
               for n, d in run.images.items()]
    run.write(MASTER, masters)
    run.facade = PullingRegions(run.dir, run.facade.data, {}, broken=broken, wrong=wrong)
    settings = Settings(
        master_region=MASTER,
        targets={"master": TargetConfig("master", tenant_id=TENANT,
                                        server_side_copy=server_side_copy)},
        images_dir=str(tmp_path / "no-images-dir"),
    )
    run.runner = Runner(settings, lambda target: run.facade)
    return run


def sync(run: Run) -> int:
    try:
        return run.runner.sync(run.refs, dry_run=False)
    finally:
        run.runner.close()


def test_a_region_alone_in_needing_an_image_copies_it_by_itself(tmp_path, log):
    run = pulling_run(tmp_path, broken=set())
    run.refs = [RegionRef("master", "Burgos")]
    assert sync(run) == 0
    assert run.facade.downloads == {}  # no byte went through glancesync
    # Still made under a temporary name, checked, then put in place.
    assert len(run.facade.pulled) == len(run.images)
    assert all(".glancesync-tmp-" in str(name) for _, name in run.facade.pulled)
    assert run.checksums("Burgos") == run.expected()
    assert "Burgos: debian copied by the region from the master region" in log.text


def test_regions_that_could_copy_by_themselves_share_one_read_instead(tmp_path, log):
    # Each image is read once for all of them anyway: their own copies would read the
    # master again for each region.
    run = pulling_run(tmp_path, broken=set())
    assert sync(run) == 0
    assert run.facade.pulled == []
    assert run.facade.downloads == {"id-cirros": 1, "id-debian": 1, "id-ubuntu": 1}
    for region in REGIONS:
        assert run.checksums(region) == run.expected(), region


@pytest.mark.parametrize(
    ("region", "warning"),
    [
        ("Caceres", "Caceres: Server-side copy of cirros.glancesync-tmp-"),
        ("Leon", "Leon: the region's own copy of cirros does not have the master's content"),
    ],
)
def test_a_region_whose_own_copy_fails_is_streamed_to_instead(tmp_path, log, region, warning):
    run = pulling_run(tmp_path, broken={"Caceres"}, wrong={"Leon"})
    run.refs = [RegionRef("master", region)]
    assert sync(run) == 0
    assert run.checksums(region) == run.expected()
    assert warning in log.text
    # After the first failure, the region's images are streamed straight away.
    assert run.facade.downloads == {"id-cirros": 1, "id-debian": 1, "id-ubuntu": 1}
    assert len(run.facade.pulled) == (1 if region == "Leon" else 0)


def test_server_side_copy_can_be_turned_off(tmp_path):
    run = pulling_run(tmp_path, broken=set(), server_side_copy=False)
    run.refs = [RegionRef("master", "Burgos")]
    assert sync(run) == 0
    assert run.facade.pulled == []
    assert run.facade.downloads == {"id-cirros": 1, "id-debian": 1, "id-ubuntu": 1}


# -- interruptions -------------------------------------------------------------------------
class SlowRegions(StreamingRegions):
    """Uploads that take their time, so that a signal arrives in the middle of them."""

    def upload_image(self, region: str, image: Image, source) -> Image:
        chunks = source.chunks()
        try:
            for _chunk in chunks:
                time.sleep(0.2)
        finally:
            chunks.close()
        return OfflineFacade.upload_image(self, region, image, source)


def test_a_signal_stops_every_region_and_each_cleans_up_its_copy_in_flight(tmp_path, log):
    import os
    import signal

    from glancesync.interrupt import stop_on_signals

    run = Run(tmp_path)
    run.facade = SlowRegions(run.dir, run.facade.data, {})
    run.runner = Runner(run.runner.settings, lambda target: run.facade)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(Interrupted) as caught, stop_on_signals():
            run.runner.sync(run.refs, dry_run=False)
    finally:
        timer.cancel()
        run.runner.close()
    assert caught.value.exit_code == 143
    for region in REGIONS:
        # Nothing half-made: the copies in flight were dropped, no temporary one is left.
        assert all(".glancesync-tmp-" not in str(name) for name in run.checksums(region))
        assert f"{region}: interrupted by SIGTERM; the operation in progress was cleaned up" in (
            log.text
        )


def test_parallel_with_no_region_ends_at_once(tmp_path, log):
    run = Run(tmp_path)
    try:
        assert run.runner.sync_parallel([], dry_run=False, base=str(tmp_path)) == 0
    finally:
        run.runner.close()
