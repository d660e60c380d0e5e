"""The executor applying a plan to file-backed (offline) regions in tmp_path.

Each test writes the master region Valladolid and the destination Burgos as backup CSV
files, plans Burgos exactly as a run does, executes, and reads Burgos back. Failures are
simulated with a thin Facade wrapper around the OfflineFacade.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glancesync import marker
from glancesync.backup import write_csv_atomic
from glancesync.config import TargetConfig
from glancesync.exceptions import FacadeError
from glancesync.executor import Executor, RegionResult
from glancesync.facade.base import Facade, MetadataChanges
from glancesync.facade.offline import OfflineFacade
from glancesync.image import Image
from glancesync.plan import plan_region
from glancesync.selection import master_images
from glancesync.transfer import ImageSource

MASTER = "Valladolid"
TENANT = "tenant1id"


def img(name: str, content: str, size: int = 1048576, region: str = MASTER, **kw) -> Image:
    """An image whose checksum and sha512 derive from ``content``."""
    return Image(
        id=kw.pop("id", f"{region[:3].lower()}-{name}"),
        name=name,
        region=region,
        owner=kw.pop("owner", TENANT),
        checksum=hashlib.md5(content.encode()).hexdigest(),
        os_hash_algo="sha512",
        os_hash_value=hashlib.sha512(content.encode()).hexdigest(),
        size=size,
        **kw,
    )


def copy_in_burgos(master: Image, **kw) -> Image:
    fields = dict(
        id=f"bur-{master.name}",
        name=master.name,
        region="Burgos",
        owner=TENANT,
        checksum=master.checksum,
        os_hash_algo=master.os_hash_algo,
        os_hash_value=master.os_hash_value,
        size=master.size,
        visibility=master.visibility,
        properties=dict(master.properties),
    )
    fields.update(kw)
    return Image(**fields)


class Recording(Facade):
    """Passes everything to the offline facade and records the writes."""

    def __init__(self, inner: OfflineFacade) -> None:
        super().__init__(inner.target_name)
        self.inner = inner
        self.writes: list[tuple] = []

    def regions(self) -> list[str]:
        return self.inner.regions()

    def tenant_id(self) -> str:
        return self.inner.tenant_id()

    def list_images(self, region: str) -> list[Image]:
        return self.inner.list_images(region)

    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        return self.inner.download(region, image_id)

    def get_image(self, region: str, image_id: str) -> Image | None:
        return self.inner.get_image(region, image_id)

    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        self.writes.append(("upload", source.master.name))
        return self.inner.upload_image(region, image, source)

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        self.writes.append(("update", image_id, dict(changes)))
        self.inner.update_image(region, image_id, changes)

    def delete_image(self, region: str, image_id: str) -> None:
        self.writes.append(("delete", image_id))
        self.inner.delete_image(region, image_id)

    def flush(self, region: str | None = None) -> None:
        self.inner.flush(region)


class CorruptingUpload(Recording):
    """The region stores something else than what was sent for images named a_*."""

    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        created = super().upload_image(region, image, source)
        if not str(source.master.name).startswith("a_"):
            return created
        return created.copy(checksum="0" * 32, os_hash_value="0" * 128)


class FailingUpload(Recording):
    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        name = source.master.name
        self.writes.append(("upload", name))
        raise FacadeError(f"Burgos: Upload of {name} Failed. Cause: 413 quota exceeded")


class FailingPromotion(Recording):
    """The metadata call that puts a verified copy in place fails."""

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        if changes.get("os_hidden") is False:
            self.writes.append(("update", image_id, dict(changes)))
            raise FacadeError(f"Burgos: Update of {image_id} failed. Cause: HTTP 500")
        super().update_image(region, image_id, changes)


def no_bytes(master: Image) -> ImageSource:
    def opener() -> Iterator[bytes]:
        raise AssertionError("offline uploads read no bytes")

    return ImageSource(master, "test", opener)


class Federation:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, region: str, images: list[Image]) -> None:
        rows = [i.to_csv_row() for i in images]
        write_csv_atomic(str(self.directory / f"backup_{region}.csv"), rows)

    def facade(self) -> OfflineFacade:
        return OfflineFacade("master", str(self.directory), tenant_id=TENANT)

    def sync(
        self,
        target: TargetConfig | None = None,
        dry_run: bool = False,
        facade: Facade | None = None,
    ) -> RegionResult:
        target = target or TargetConfig("master")
        facade = facade or self.facade()
        master, _ = master_images(facade.list_images(MASTER), TENANT)
        plan = plan_region(
            "Burgos", master, facade.list_images("Burgos"), target, TENANT,
            is_leftover=marker.is_leftover,
        )  # fmt: skip
        try:
            return Executor(facade, "Burgos", target, plan, no_bytes, dry_run).run()
        finally:
            facade.flush("Burgos")  # as the runner does when a region ends

    def burgos(self) -> dict[str, Image]:
        images = self.facade().list_images("Burgos")
        by_name = {i.name: i for i in images}
        assert len(by_name) == len(images), "duplicated names in Burgos"
        return by_name

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.directory.glob("backup_*.csv"))}


@pytest.fixture
def fed(tmp_path: Path) -> Federation:
    return Federation(tmp_path)


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="glancesync")
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname}:{r.getMessage()}" for r in caplog.records]


# -- what an upload carries ------------------------------------------------------------


def test_upload_carries_only_the_metadata_set_properties_unknown_names_ignored(fed):
    debian = img("debian", "d1", properties={"type": "base", "nid": "105", "sdc_aware": "true"})
    fed.write(MASTER, [debian])
    fed.write("Burgos", [])
    result = fed.sync(TargetConfig("master", metadata_set=frozenset({"type", "fake"})))
    assert not result.failed
    new = fed.burgos()["debian"]
    assert new.properties == {"type": "base"}
    assert (new.id, new.owner, new.visibility, new.checksum) == (
        "1$debian",
        TENANT,
        "public",
        debian.checksum,
    )


def test_upload_without_metadata_set_carries_every_property_even_empty_ones(fed):
    props = {"type": "base", "nid": "105", "description": ""}
    fed.write(MASTER, [img("debian", "d1", properties=props, min_ram=512, disk_format="qcow2")])
    fed.write("Burgos", [])
    fed.sync()
    new = fed.burgos()["debian"]
    assert new.properties == props
    assert (new.min_ram, new.disk_format) == (512, "qcow2")


def test_empty_property_value_is_synchronised_on_an_existing_image(fed, log):
    master = img("debian", "d1", properties={"type": "base", "description": ""})
    fed.write(MASTER, [master])
    fed.write("Burgos", [copy_in_burgos(master, properties={"type": "base"})])
    fed.sync(TargetConfig("master", metadata_set=frozenset({"type", "description"})))
    assert fed.burgos()["debian"].properties == {"type": "base", "description": ""}
    assert "INFO:Burgos: Updating the metadata of image debian" in lines(log)


def test_kernels_are_uploaded_before_the_images_that_use_them(fed):
    kernel = img("kernel", "k1", size=50 * 1048576, properties={"type": "kernel"})
    ramdisk = img("ramdisk", "r1", size=40 * 1048576, properties={"type": "ramdisk"})
    ami = img(
        "ami",
        "a1",
        size=2 * 1048576,
        properties={"type": "ami", "kernel_id": kernel.id, "ramdisk_id": ramdisk.id},
    )
    small = img("small", "s1", size=1048576, properties={"type": "base"})
    fed.write(MASTER, [ami, kernel, ramdisk, small])
    fed.write("Burgos", [])
    facade = Recording(fed.facade())
    fed.sync(TargetConfig("master", metadata_set=frozenset({"type"})), facade=facade)
    uploads = [w[1] for w in facade.writes if w[0] == "upload"]
    assert uploads == ["ramdisk", "kernel", "small", "ami"]
    burgos = fed.burgos()
    # metadata_set selects ("type") and filters; the AMI references are rewritten anyway.
    assert burgos["ami"].properties == {
        "type": "ami",
        "kernel_id": "1$kernel",
        "ramdisk_id": "1$ramdisk",
    }
    assert burgos["kernel"].properties == {"type": "kernel"}


# -- replace and rename --------------------------------------------------------------------


def test_replace_uploads_the_new_copy_and_deletes_the_old_one(fed, log):
    master = img("debian", "d2", properties={"nid": "2"})
    old = copy_in_burgos(img("debian", "d1"), properties={"nid": "1"})
    fed.write(MASTER, [master])
    fed.write("Burgos", [old])
    result = fed.sync(TargetConfig("master", replace=frozenset({old.checksum})))
    assert not result.failed
    assert list(fed.burgos()) == ["debian"]
    new = fed.burgos()["debian"]
    assert (new.id, new.checksum, new.properties) == ("1$debian", master.checksum, {"nid": "2"})
    assert "INFO:Burgos: Replacing image debian (1.0 MiB)" in lines(log)


def test_rename_keeps_the_old_copy_private_with_its_properties_and_ami_refs(fed, log):
    kernel = img("kernel", "k1")
    ami = img("ami", "a2", properties={"type": "ami", "kernel_id": kernel.id})
    old_ami = copy_in_burgos(
        img("ami", "a1"), properties={"type": "ami-old", "kernel_id": "bur-kernel"}
    )
    fed.write(MASTER, [kernel, ami])
    fed.write("Burgos", [copy_in_burgos(kernel), old_ami])
    fed.sync(TargetConfig("master", rename=frozenset({"any"})))
    burgos = fed.burgos()
    assert sorted(burgos) == ["ami", "ami.old", "kernel"]
    renamed = burgos["ami.old"]
    assert (renamed.id, renamed.visibility, renamed.checksum) == (
        old_ami.id,
        "private",
        old_ami.checksum,
    )
    assert renamed.properties == {"type": "ami-old", "kernel_id": "bur-kernel"}
    assert burgos["ami"].properties == {"type": "ami", "kernel_id": "bur-kernel"}
    assert burgos["ami"].checksum == ami.checksum
    assert "INFO:Burgos: Renaming and replacing image ami (1.0 MiB)" in lines(log)


def test_rename_picks_a_free_old_name(fed):
    master = img("debian", "d3")
    fed.write(MASTER, [master])
    fed.write(
        "Burgos",
        [
            copy_in_burgos(img("debian.old", "d1"), id="bur-old", visibility="private"),
            copy_in_burgos(img("debian", "d2")),
        ],
    )
    fed.sync(TargetConfig("master", rename=frozenset({"any"})))
    assert sorted(fed.burgos()) == ["debian", "debian.old", "debian.old.1"]
    assert fed.burgos()["debian.old"].id == "bur-old"


# -- failures leave no half-done work behind -------------------------------------------------


def test_a_bad_copy_is_deleted_and_the_other_images_are_still_synced(fed, log):
    fed.write(MASTER, [img("a_first", "a", size=1048576), img("b_second", "b", size=2097152)])
    fed.write("Burgos", [])
    facade = CorruptingUpload(fed.facade())
    result = fed.sync(facade=facade)
    assert result.failed
    assert list(fed.burgos()) == ["b_second"]
    assert [w[:2] for w in facade.writes] == [
        ("upload", "a_first"), ("delete", "1$a_first"),
        ("upload", "b_second"), ("update", "1$b_second"),
    ]  # fmt: skip
    assert result.failures[0].startswith("a_first: Burgos: uploaded image a_first does not have")
    errors = [line for line in lines(log) if line.startswith("ERROR:")]
    assert errors[-1] == "ERROR:Burgos: Region synchronisation failed for: a_first"


def test_a_copy_is_uploaded_hidden_private_and_marked_then_put_in_place(fed):
    master = img("debian", "d1", visibility="community", protected=True)
    fed.write(MASTER, [master])
    fed.write("Burgos", [])
    facade = Recording(fed.facade())
    fed.sync(TargetConfig("master", forcesyncs=frozenset({master.id})), facade=facade)
    assert facade.writes[0] == ("upload", "debian")
    assert facade.writes[1][2] == {
        "name": "debian", "visibility": "community", "os_hidden": False,
        "glancesync_run": None, "protected": True,
    }  # fmt: skip
    new = fed.burgos()["debian"]
    assert (new.visibility, new.hidden, new.protected) == ("community", False, True)
    assert "glancesync_run" not in new.properties


def test_a_protected_copy_to_replace_is_known_at_plan_time_nothing_is_uploaded(fed, log):
    master = img("debian", "d2")
    old = copy_in_burgos(img("debian", "d1"), protected=True)
    fed.write(MASTER, [master])
    fed.write("Burgos", [old])
    facade = Recording(fed.facade())
    result = fed.sync(TargetConfig("master", replace=frozenset({"any"})), facade=facade)
    assert facade.writes == []
    assert not result.failed
    assert result.needs_operator == ["debian (error_protected)"]
    assert fed.burgos() == {"debian": old}
    warning = next(line for line in lines(log) if "debian cannot be synchronised" in line)
    assert f"openstack image set --unprotected {old.id}" in warning
    assert "rename" in warning


def test_rename_whose_upload_fails_touches_nothing(fed, log):
    master = img("debian", "d2")
    old = copy_in_burgos(img("debian", "d1"), visibility="community", properties={"nid": "1"})
    fed.write(MASTER, [master])
    fed.write("Burgos", [old])
    facade = FailingUpload(fed.facade())
    result = fed.sync(TargetConfig("master", rename=frozenset({"any"})), facade=facade)
    assert result.failed
    assert fed.burgos() == {"debian": old}
    assert [w[0] for w in facade.writes] == ["upload"]  # the old copy was never renamed
    assert "ERROR:Burgos: Upload of debian Failed. Cause: 413 quota exceeded" in lines(log)


def test_rename_whose_swap_fails_gives_the_old_copy_its_name_back(fed, log):
    master = img("debian", "d2")
    old = copy_in_burgos(img("debian", "d1"), visibility="community", properties={"nid": "1"})
    fed.write(MASTER, [master])
    fed.write("Burgos", [old])
    facade = FailingPromotion(fed.facade())
    result = fed.sync(TargetConfig("master", rename=frozenset({"any"})), facade=facade)
    assert result.failed
    assert fed.burgos() == {"debian": old}  # the new copy deleted, the old one renamed back
    assert [w[0] for w in facade.writes] == ["upload", "update", "update", "delete", "update"]


class NoDelete(Recording):
    def delete_image(self, region: str, image_id: str) -> None:
        self.writes.append(("delete", image_id))
        raise FacadeError(f"Burgos: Deletion of image {image_id} failed. Cause: HTTP 503")


def test_a_failed_undo_is_reported_and_the_first_error_kept(fed, log):
    master = img("debian", "d2")
    old = copy_in_burgos(img("debian", "d1"))
    fed.write(MASTER, [master])
    fed.write("Burgos", [old])
    result = fed.sync(
        TargetConfig("master", replace=frozenset({"any"})), facade=NoDelete(fed.facade())
    )
    assert result.failed
    errors = [line for line in lines(log) if line.startswith("ERROR:")]
    assert errors[0].startswith("ERROR:Burgos: the new copy 1$debian of debian could not be ")
    assert errors[1] == f"ERROR:Burgos: Deletion of image {old.id} failed. Cause: HTTP 503"
    # Both copies are still there, and the operator was told which one is new.
    assert sorted(i.id for i in fed.facade().list_images("Burgos")) == sorted([old.id, "1$debian"])


def test_a_failed_kernel_keeps_its_ami_on_the_old_kernel_and_others_go_on(fed):
    kernel = img("kernel", "k2")
    ami = img("ami", "a1", properties={"kernel_id": kernel.id})
    fed.write(MASTER, [kernel, ami, img("zzz_new", "z1")])
    fed.write(
        "Burgos",
        [
            copy_in_burgos(img("kernel", "k1")),
            copy_in_burgos(ami, properties={"kernel_id": "bur-kernel"}),
        ],
    )
    facade = FailingUpload(fed.facade())
    result = fed.sync(TargetConfig("master", replace=frozenset({"any"})), facade=facade)
    assert result.failed and result.failures[0].startswith("kernel: ")
    # the old kernel is still there, so the AMI still points at a valid image
    assert fed.burgos()["ami"].properties == {"kernel_id": "bur-kernel"}
    assert fed.burgos()["kernel"].id == "bur-kernel"
    assert [w[1] for w in facade.writes] == ["kernel", "zzz_new"]  # the next image was tried


# -- dry run -----------------------------------------------------------------------------------


def test_dry_run_makes_no_write_in_any_phase(fed, log):
    kernel = img("kernel", "k2", size=3 * 1048576)
    fed.write(
        MASTER,
        [
            img("new", "n1"),
            img("meta", "m1", properties={"nid": "2"}),
            img("swap", "s2"),
            img("move", "v2"),
            kernel,
            img("ami", "a1", size=10 * 1048576, properties={"kernel_id": kernel.id}),
            img("gone_obsolete", "g1", visibility="private"),
        ],
    )
    fed.write(
        "Burgos",
        [
            copy_in_burgos(img("meta", "m1"), properties={"nid": "1"}),
            copy_in_burgos(img("swap", "s1")),
            copy_in_burgos(img("move", "v1")),
            copy_in_burgos(img("kernel", "k1")),
            copy_in_burgos(img("ami", "a1"), properties={"kernel_id": "bur-kernel"}),
            copy_in_burgos(img("gone", "g1")),
        ],
    )
    before = fed.snapshot()
    facade = Recording(fed.facade())
    target = TargetConfig(
        "master",
        replace=frozenset({img("swap", "s1").checksum, img("kernel", "k1").checksum}),
        rename=frozenset({img("move", "v1").checksum}),
    )
    result = fed.sync(target, dry_run=True, facade=facade)
    assert not result.failed
    assert facade.writes == []
    assert fed.snapshot() == before
    assert lines(log) == [
        "INFO:Burgos: Obsolete image pending to update gone_obsolete",
        "INFO:Burgos: Image pending to update the metadata meta",
        "INFO:Burgos: Replacing image kernel (3.0 MiB)",
        "INFO:Burgos: Pending: kernel (3.0 MiB)",
        "INFO:Burgos: Renaming and replacing image move (1.0 MiB)",
        "INFO:Burgos: Pending: move (1.0 MiB)",
        "INFO:Burgos: Pending: new (1.0 MiB)",
        "INFO:Burgos: Replacing image swap (1.0 MiB)",
        "INFO:Burgos: Pending: swap (1.0 MiB)",
        "INFO:Burgos: Image pending to update the metadata ami",
        "INFO:Burgos: Work pending: 6.0 MiB to upload (4 images), 3 metadata updates",
    ]
    assert (result.uploaded, result.replaced, result.renamed) == (1, 2, 1)  # would be
    assert (result.metadata_updates, result.uploaded_bytes) == (3, 6 * 1048576)
    # The same plan applied for real does all of it.
    result = fed.sync(target, facade=facade)
    assert not result.failed and facade.writes
    assert sorted(fed.burgos()) == [
        "ami", "gone_obsolete", "kernel", "meta", "move", "move.old", "new", "swap",
    ]  # fmt: skip


# -- AMI phase ---------------------------------------------------------------------------------


def test_ami_ids_are_set_after_the_kernel_is_replaced(fed, log):
    kernel = img("kernel", "k2", size=5 * 1048576, properties={"type": "kernel"})
    ramdisk = img("ramdisk", "r1", properties={"type": "ramdisk"})
    ami = img(
        "ami",
        "a1",
        size=1048576,
        properties={"type": "ami", "kernel_id": kernel.id, "ramdisk_id": ramdisk.id},
    )
    fed.write(MASTER, [kernel, ramdisk, ami])
    old_kernel = copy_in_burgos(img("kernel", "k1"), properties={"type": "kernel"})
    fed.write(
        "Burgos",
        [
            old_kernel,
            copy_in_burgos(ramdisk),
            copy_in_burgos(
                ami,
                properties={
                    "type": "ami",
                    "kernel_id": old_kernel.id,
                    "ramdisk_id": "bur-ramdisk",
                    "local": "x",
                },
            ),
        ],
    )
    target = TargetConfig(
        "master", replace=frozenset({old_kernel.checksum}), metadata_set=frozenset({"type"})
    )
    result = fed.sync(target)
    assert not result.failed
    burgos = fed.burgos()
    assert burgos["kernel"].id == "1$kernel"
    assert burgos["ami"].properties == {
        "type": "ami",
        "kernel_id": "1$kernel",
        "ramdisk_id": "bur-ramdisk",
        "local": "x",  # outside metadata_set: local, kept
    }
    assert lines(log)[-3:-1] == [
        "INFO:Burgos: Image uploaded.",
        "INFO:Burgos: Updating the metadata of image ami",
    ]
    assert re.fullmatch(
        r"INFO:Burgos: Total uploaded to region: 5\.0 MiB \(1 image\) in \d+\.\d s, "
        r"([\d.]+ [KMGT]?i?B/s|-)",
        lines(log)[-1],
    ), lines(log)[-1]


# -- leftovers, foreign and hidden images ------------------------------------------------------


def marked(name: str, value: str, **kw) -> Image:
    return copy_in_burgos(
        img(name, "tmp"), id=f"tmp-{name}", visibility="private", hidden=True,
        properties={"glancesync_run": value}, **kw,
    )  # fmt: skip


def test_leftovers_of_dead_runs_are_deleted_before_anything_else(fed, log):
    dead = marker.RunId(pid=2**22 + 12345)  # no such process
    far = marker.RunId(host="elsewhere.example.org", started=0)
    recent_far = marker.RunId(host="elsewhere.example.org")
    live = marker.start_run()
    try:
        fed.write(MASTER, [img("debian", "d1")])
        fed.write(
            "Burgos",
            [
                marked("a.glancesync-tmp-1", dead.value),
                marked("b.glancesync-tmp-2", far.value),
                marked("c.glancesync-tmp-3", recent_far.value),
                marked("d.glancesync-tmp-4", live.value),
                marked("e.glancesync-tmp-5", dead.value, owner="someone-else"),
            ],
        )
        before = fed.snapshot()
        fed.sync(dry_run=True)
        assert fed.snapshot() == before
        assert "INFO:Burgos: Leftover image a.glancesync-tmp-1 (tmp-a.glancesync-tmp-1) of an " \
            "interrupted run pending to delete" in lines(log)
        facade = Recording(fed.facade())
        fed.sync(facade=facade)
        assert facade.writes[:2] == [
            ("delete", "tmp-a.glancesync-tmp-1"), ("delete", "tmp-b.glancesync-tmp-2")
        ]
        assert sorted(fed.burgos()) == [
            "c.glancesync-tmp-3", "d.glancesync-tmp-4", "debian", "e.glancesync-tmp-5",
        ]  # fmt: skip
    finally:
        marker.end_run(live)


def test_another_projects_copy_is_never_written(fed, log):
    master = img("debian", "d2", properties={"nid": "2"})
    cirros = img("cirros", "c1", properties={"nid": "9"})
    fed.write(MASTER, [master, cirros])
    fed.write(
        "Burgos",
        [
            copy_in_burgos(img("debian", "d1"), owner="other"),
            copy_in_burgos(cirros, owner="other", properties={"nid": "1"}),
        ],
    )
    target = TargetConfig("master", only_tenant_images=False, replace=frozenset({"any"}))
    facade = Recording(fed.facade())
    result = fed.sync(target, facade=facade)
    assert facade.writes == []
    assert result.needs_operator == ["debian (error_checksum)"]
    assert any("belongs to project other" in line for line in lines(log))


def test_hidden_master_images_are_not_synchronised_unless_forced(fed):
    old = img("debian", "d1", id="hidden-old", hidden=True)
    new = img("debian", "d2", id="visible-new")
    fed.write(MASTER, [old, new, img("rescue", "r1", id="hidden-rescue", hidden=True)])
    fed.write("Burgos", [])
    facade = fed.facade()
    master, warnings = master_images(facade.list_images(MASTER), TENANT)
    assert warnings == [] and master["debian"].id == "visible-new"
    assert "rescue" not in master
    forced, _ = master_images(facade.list_images(MASTER), TENANT, frozenset({"hidden-rescue"}))
    assert forced["rescue"].id == "hidden-rescue"


# -- retries, lost answers, interruptions ------------------------------------------------------


class Flaky(Recording):
    """Uploads fail ``failures`` times with a transient error first."""

    def __init__(self, inner: OfflineFacade, failures: int, transient: bool = True) -> None:
        super().__init__(inner)
        self.failures = failures
        self.transient = transient

    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        if self.failures:
            self.failures -= 1
            self.writes.append(("upload-failed", source.master.name))
            raise FacadeError("Burgos: Upload of x failed. Cause: HTTP 503", self.transient)
        return super().upload_image(region, image, source)


def sync_with(fed: Federation, facade: Facade, target: TargetConfig | None = None):
    target = target or TargetConfig("master")
    master, _ = master_images(facade.list_images(MASTER), TENANT)
    plan = plan_region("Burgos", master, facade.list_images("Burgos"), target, TENANT)
    delays: list[float] = []
    result = Executor(
        facade, "Burgos", target, plan, no_bytes, retries=2, sleep=delays.append
    ).run()
    facade.flush("Burgos")  # as the runner does when a region ends
    return result, delays


def test_a_transient_upload_failure_is_retried_from_the_source(fed):
    fed.write(MASTER, [img("debian", "d1")])
    fed.write("Burgos", [])
    result, delays = sync_with(fed, Flaky(fed.facade(), failures=2))
    assert not result.failed and list(fed.burgos()) == ["debian"]
    assert len(delays) == 2 and 0 < delays[0] < delays[1] <= 30


def test_retries_are_bounded_and_permanent_errors_not_retried(fed):
    fed.write(MASTER, [img("debian", "d1")])
    fed.write("Burgos", [])
    result, delays = sync_with(fed, Flaky(fed.facade(), failures=3))
    assert result.failed and len(delays) == 2
    result, delays = sync_with(fed, Flaky(fed.facade(), failures=1, transient=False))
    assert result.failed and delays == []
    assert fed.burgos() == {}


class DeleteAnswerLost(Recording):
    """Glance deletes the image, but the answer never arrives."""

    def delete_image(self, region: str, image_id: str) -> None:
        super().delete_image(region, image_id)
        raise FacadeError(f"Burgos: Deletion of image {image_id} failed. Cause: timed out")


def test_replace_whose_delete_answer_is_lost_keeps_the_verified_new_copy(fed):
    old = copy_in_burgos(img("debian", "d1"))
    fed.write(MASTER, [img("debian", "d2")])
    fed.write("Burgos", [old])
    facade = DeleteAnswerLost(fed.facade())
    result = fed.sync(TargetConfig("master", replace=frozenset({"any"})), facade=facade)
    assert not result.failed
    assert fed.burgos()["debian"].checksum == img("debian", "d2").checksum


def test_replace_whose_delete_fails_takes_the_new_copy_back_out(fed, log):
    old = copy_in_burgos(img("debian", "d1"))
    fed.write(MASTER, [img("debian", "d2")])
    fed.write("Burgos", [old])

    class OldStays(Recording):
        def delete_image(self, region: str, image_id: str) -> None:
            if image_id == old.id:
                raise FacadeError(f"Burgos: Deletion of image {image_id} failed. Cause: 409")
            super().delete_image(region, image_id)

    target = TargetConfig("master", replace=frozenset({"any"}))
    result = fed.sync(target, facade=OldStays(fed.facade()))
    assert result.failed
    assert fed.burgos() == {"debian": old}
    assert "(the new copy of debian was removed again)" in result.failures[0]


class InterruptAt(Recording):
    """SIGTERM arrives during the write named ``when``."""

    def __init__(self, inner: OfflineFacade, when: str) -> None:
        super().__init__(inner)
        self.when = when

    def upload_image(self, region: str, image: Image, source: ImageSource) -> Image:
        if self.when == "upload":
            from glancesync.exceptions import Interrupted

            raise Interrupted(15, "SIGTERM")
        return super().upload_image(region, image, source)

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        if self.when == "promote" and changes.get("os_hidden") is False:
            from glancesync.exceptions import Interrupted

            super().update_image(region, image_id, changes)  # applied, answer not read
            raise Interrupted(15, "SIGTERM")
        super().update_image(region, image_id, changes)


@pytest.mark.parametrize("when", ["upload", "promote"])
def test_an_interrupted_rename_leaves_the_region_as_it_was(fed, when):
    from glancesync.exceptions import Interrupted

    old = copy_in_burgos(img("debian", "d1"), visibility="community")
    fed.write(MASTER, [img("debian", "d2")])
    fed.write("Burgos", [old])
    with pytest.raises(Interrupted):
        target = TargetConfig("master", rename=frozenset({"any"}))
        fed.sync(target, facade=InterruptAt(fed.facade(), when))
    assert fed.burgos() == {"debian": old}


class InterruptDuring(Recording):
    """SIGTERM arrives while the write on ``image_id`` is in flight; ``applied``: Glance
    did it (the answer was not read), else the request never reached Glance."""

    def __init__(self, inner: OfflineFacade, image_id: str, applied: bool) -> None:
        super().__init__(inner)
        self.image_id, self.applied, self.fired = image_id, applied, False

    def _interrupt(self, image_id: str, write: Callable[[], None]) -> None:
        from glancesync.exceptions import Interrupted

        if image_id != self.image_id or self.fired:
            write()
            return
        self.fired = True
        if self.applied:
            write()
        raise Interrupted(15, "SIGTERM")

    def update_image(self, region: str, image_id: str, changes: MetadataChanges) -> None:
        self._interrupt(image_id, lambda: super(InterruptDuring, self).update_image(
            region, image_id, changes))

    def delete_image(self, region: str, image_id: str) -> None:
        self._interrupt(image_id, lambda: super(InterruptDuring, self).delete_image(
            region, image_id))


@pytest.mark.parametrize("applied", [True, False])
def test_a_rename_of_the_old_copy_interrupted_in_flight_is_undone(fed, applied):
    from glancesync.exceptions import Interrupted

    old = copy_in_burgos(img("debian", "d1"), visibility="community")
    fed.write(MASTER, [img("debian", "d2")])
    fed.write("Burgos", [old])
    with pytest.raises(Interrupted):
        target = TargetConfig("master", rename=frozenset({"any"}))
        fed.sync(target, facade=InterruptDuring(fed.facade(), old.id, applied))
    assert fed.burgos() == {"debian": old}


@pytest.mark.parametrize("applied", [True, False])
def test_a_delete_of_the_replaced_copy_interrupted_in_flight_is_completed(fed, applied):
    from glancesync.exceptions import Interrupted

    old = copy_in_burgos(img("debian", "d1"))
    fed.write(MASTER, [img("debian", "d2")])
    fed.write("Burgos", [old])
    with pytest.raises(Interrupted):
        target = TargetConfig("master", replace=frozenset({"any"}))
        fed.sync(target, facade=InterruptDuring(fed.facade(), old.id, applied))
    images = fed.facade().list_images("Burgos")
    assert [(i.name, i.checksum) for i in images] == [("debian", img("debian", "d2").checksum)]
