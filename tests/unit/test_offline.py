"""OfflineFacade: regions kept as backup CSV files in a directory."""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import glancesync.backup
from glancesync.config import Credentials, TargetConfig
from glancesync.exceptions import ConfigError, FacadeError
from glancesync.facade.offline import OfflineFacade
from glancesync.image import Image
from glancesync.transfer import ImageSource

SHA1 = "ddfe163345d338193ac2bdc183f8e9dcff904b43"

# Rows as the 2015 tool wrote them (nine fields, CRLF, Python 2 reprs).
BURGOS = (
    f"Burgos,image01,101,active,1073741824,{SHA1},tenant1id,True,"
    "\"{'type': 'ngimages', 'nid': 1}\"\r\n"
    "Burgos,image02,102,active,20,md5two,tenant1id,False,{}\r\n"
)
VALLADOLID = "Valladolid,image01,201,active,1073741824,md5one,tenant1id,True,{}\r\n"
OTHER_MADRID = (
    "other:Madrid,image199,199,active,5,abc,tenant2id,True,"
    "\"{u'type': u'fiware:iot', u'nid': u'199'}\"\r\n"
)


@pytest.fixture
def offline_dir(tmp_path: Path) -> Path:
    (tmp_path / "backup_Burgos.csv").write_bytes(BURGOS.encode())
    (tmp_path / "backup_Valladolid.csv").write_bytes(VALLADOLID.encode())
    (tmp_path / "backup_Empty.csv").write_bytes(b"")
    (tmp_path / "backup_other:Madrid.csv").write_bytes(OTHER_MADRID.encode())
    (tmp_path / "backup_other:Trento.csv").write_bytes(b"")
    (tmp_path / "backup_third:Lannion.csv").write_bytes(b"")
    # Not regions: not named backup_*.csv, a directory, an empty region part.
    (tmp_path / "notes.csv").write_bytes(b"")
    (tmp_path / "backup_Burgos.csv.bak").write_bytes(b"")
    (tmp_path / "backup_Dir.csv").mkdir()
    (tmp_path / "backup_.csv").write_bytes(b"")
    (tmp_path / "backup_other:.csv").write_bytes(b"")
    return tmp_path


def facade(directory: Path, target: str = "master", tenant_name: str | None = "tenant1"):
    return OfflineFacade(target, str(directory), tenant_id=None, tenant_name=tenant_name)


def source_for(master: Image) -> ImageSource:
    def no_bytes() -> Iterator[bytes]:
        raise AssertionError("offline upload must not read the image bytes")

    return ImageSource(master, "test", no_bytes)


def master_image(name: str = "image02", **changes) -> Image:
    fields = dict(
        id="m-" + name,
        name=name,
        region="Valladolid",
        owner="masterid",
        visibility="public",
        checksum="md5master",
        size=4096,
        status="active",
        properties={"type": "ngimages"},
        os_hash_algo="sha512",
        os_hash_value="hashmaster",
        disk_format="qcow2",
        container_format="bare",
        min_ram=256,
        min_disk=2,
        protected=False,
    )
    fields.update(changes)
    return Image(**fields)


def upload(f: OfflineFacade, region: str, image: Image) -> Image:
    return f.upload_image(region, image, source_for(image))


def ids(f: OfflineFacade, region: str) -> list[str]:
    return [i.id for i in f.list_images(region)]


# -- regions ------------------------------------------------------------------------------
def test_master_regions_are_files_without_colon(offline_dir: Path) -> None:
    assert facade(offline_dir).regions() == ["Burgos", "Empty", "Valladolid"]


def test_target_regions_are_the_target_prefixed_files(offline_dir: Path) -> None:
    assert facade(offline_dir, "other").regions() == ["Madrid", "Trento"]
    assert facade(offline_dir, "third").regions() == ["Lannion"]
    assert facade(offline_dir, "nobody").regions() == []


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline mode: .*missing is not a directory"):
        facade(tmp_path / "missing")


# -- tenant id ----------------------------------------------------------------------------
def test_tenant_id_configured_wins(tmp_path: Path) -> None:
    f = OfflineFacade("master", str(tmp_path), tenant_id="abc123", tenant_name="tenant1")
    assert f.tenant_id() == "abc123"


def test_tenant_id_from_tenant_name(tmp_path: Path) -> None:
    assert facade(tmp_path, tenant_name="tenant1").tenant_id() == "tenant1id"


def test_tenant_id_unknown_is_a_config_error(tmp_path: Path) -> None:
    f = facade(tmp_path, "other", tenant_name=None)
    with pytest.raises(ConfigError) as err:
        f.tenant_id()
    assert str(err.value) == (
        "offline mode: target [other] needs tenant_id or a tenant name "
        "(tenant/credential option or OS_PROJECT_NAME)"
    )


def test_for_target_takes_tenant_from_the_target_config(tmp_path: Path) -> None:
    target = TargetConfig(name="other", credentials=Credentials(project_name="tenant2"))
    f = OfflineFacade.for_target(target, str(tmp_path))
    assert (f.target_name, f.tenant_id()) == ("other", "tenant2id")
    target = TargetConfig(name="master", tenant_id="fixedid")
    assert OfflineFacade.for_target(target, str(tmp_path)).tenant_id() == "fixedid"


def test_for_target_with_environment_credentials_uses_os_project_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OS_TENANT_NAME", raising=False)
    monkeypatch.setenv("OS_PROJECT_NAME", "envproject")
    target = TargetConfig(name="master", credentials=Credentials(from_environment=True))
    assert OfflineFacade.for_target(target, str(tmp_path)).tenant_id() == "envprojectid"


# -- listing ------------------------------------------------------------------------------
def test_list_images_parses_the_old_rows(offline_dir: Path) -> None:
    assert facade(offline_dir).list_images("Burgos") == [
        Image(
            id="101",
            name="image01",
            region="Burgos",
            owner="tenant1id",
            visibility="public",
            checksum=SHA1,
            size=1073741824,
            properties={"type": "ngimages", "nid": "1"},
        ),
        Image(
            id="102",
            name="image02",
            region="Burgos",
            owner="tenant1id",
            visibility="private",
            checksum="md5two",
            size=20,
        ),
    ]


def test_list_images_of_another_target_has_the_fullname_region(offline_dir: Path) -> None:
    [image] = facade(offline_dir, "other").list_images("Madrid")
    assert image.region == "other:Madrid"
    assert image.properties == {"type": "fiware:iot", "nid": "199"}


def test_empty_file_is_an_empty_region(offline_dir: Path) -> None:
    assert facade(offline_dir).list_images("Empty") == []


def test_unknown_region_is_a_facade_error(offline_dir: Path) -> None:
    with pytest.raises(FacadeError) as err:
        facade(offline_dir).list_images("Lisbon")
    assert str(err.value) == f"Lisbon: no file backup_Lisbon.csv in {offline_dir}"


@pytest.mark.parametrize("region", ["other:Madrid", "../Burgos", "", "Dir"])
def test_names_that_are_not_master_regions_are_unknown(offline_dir: Path, region: str) -> None:
    with pytest.raises(FacadeError, match="no file"):
        facade(offline_dir).list_images(region)


def test_unknown_region_of_another_target_names_the_fullname(offline_dir: Path) -> None:
    with pytest.raises(FacadeError, match="^other:Burgos: no file backup_other:Burgos.csv"):
        facade(offline_dir, "other").list_images("Burgos")


def test_malformed_row_names_file_line_and_problem(tmp_path: Path) -> None:
    (tmp_path / "backup_Bad.csv").write_bytes(
        b"Bad,ok,1,active,0,,,True,{}\r\n"
        # A quoted field may span lines: the next record still gets its own line number.
        b"Bad,multi,2,active,0,,,True,\"{'a': 'x',\r\n 'b': 'y'}\"\r\n"
        b"\r\n"
        b"Bad,evil,3,active,0,,,True,__import__('os').system('x')\r\n"
    )
    with pytest.raises(FacadeError) as err:
        facade(tmp_path).list_images("Bad")
    message = str(err.value)
    assert message.startswith(f"Bad: {tmp_path / 'backup_Bad.csv'}, line 5: ")
    assert "properties field is not a literal dict" in message


def test_short_row_is_reported(tmp_path: Path) -> None:
    (tmp_path / "backup_Bad.csv").write_bytes(b"Bad,x,1\r\n")
    with pytest.raises(FacadeError, match=r"backup_Bad.csv, line 1: expected at least 9 fields"):
        facade(tmp_path).list_images("Bad")


def test_duplicate_id_is_reported(tmp_path: Path) -> None:
    (tmp_path / "backup_Bad.csv").write_bytes(
        b"Bad,a,1,active,0,,,True,{}\r\nBad,b,1,active,0,,,True,{}\r\n"
    )
    with pytest.raises(FacadeError, match=r"line 2: duplicate image id '1' \(first on line 1\)"):
        facade(tmp_path).list_images("Bad")


def test_bad_bytes_are_reported_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "backup_Bad.csv").write_bytes(
        b"Bad,a,1,active,0,,,True,{}\r\nBad,\xff,2,active,0,,,True,{}\r\n"
    )
    with pytest.raises(FacadeError, match=r"line 2: not UTF-8 text"):
        facade(tmp_path).list_images("Bad")


def test_listing_rereads_the_file(offline_dir: Path) -> None:
    f = facade(offline_dir)
    assert ids(f, "Empty") == []
    (offline_dir / "backup_Empty.csv").write_text("Empty,late,9,active,0,,,True,{}\r\n")
    assert ids(f, "Empty") == ["9"]


# -- upload -------------------------------------------------------------------------------
def test_upload_creates_seq_dollar_name_ids(offline_dir: Path) -> None:
    f = facade(offline_dir)
    assert upload(f, "Empty", master_image()).id == "1$image02"
    assert upload(f, "Empty", master_image()).id == "2$image02"
    assert upload(f, "Empty", master_image("image03")).id == "1$image03"
    assert ids(f, "Empty") == ["1$image02", "2$image02", "1$image03"]


def test_upload_reuses_a_freed_seq(offline_dir: Path) -> None:
    f = facade(offline_dir)
    upload(f, "Empty", master_image())
    upload(f, "Empty", master_image())
    f.delete_image("Empty", "1$image02")
    assert upload(f, "Empty", master_image()).id == "1$image02"


def test_uploaded_image_metadata(offline_dir: Path) -> None:
    f = facade(offline_dir, "other", tenant_name="tenant2")
    master = master_image(properties={"type": "ngimages", "nid": "7"})
    # What the engine sends may differ from the master (visibility, translated AMI ids...).
    wanted = master.copy(
        visibility="private",
        properties={"type": "ngimages", "kernel_id": "k1"},
        protected=True,
        owner="ignored",
        checksum="ignored",
        status="queued",
    )
    new = f.upload_image("Trento", wanted, source_for(master))
    expected = Image(
        id="1$image02",
        name="image02",
        region="other:Trento",
        owner="tenant2id",
        visibility="private",
        checksum="md5master",
        size=4096,
        status="active",
        properties={"type": "ngimages", "kernel_id": "k1"},
        os_hash_algo="sha512",
        os_hash_value="hashmaster",
        disk_format="qcow2",
        container_format="bare",
        min_ram=256,
        min_disk=2,
        protected=True,
    )
    assert new == expected
    assert f.list_images("Trento") == [expected]


def test_upload_owner_is_the_configured_tenant_id(offline_dir: Path) -> None:
    # The old mock used tenant+"id" even when tenant_id was set (a bug not kept).
    f = OfflineFacade("master", str(offline_dir), tenant_id="real-id", tenant_name="tenant1")
    assert upload(f, "Empty", master_image()).owner == "real-id"


def test_upload_without_tenant_writes_nothing(offline_dir: Path) -> None:
    f = facade(offline_dir, tenant_name=None)
    with pytest.raises(ConfigError):
        upload(f, "Empty", master_image())
    f.flush()
    assert (offline_dir / "backup_Empty.csv").read_bytes() == b""


def test_upload_appends_and_keeps_existing_rows_verbatim(offline_dir: Path) -> None:
    f = facade(offline_dir)
    upload(f, "Burgos", master_image("image03"))
    f.flush()
    lines = (offline_dir / "backup_Burgos.csv").read_bytes().decode().split("\r\n")
    assert "\r\n".join(lines[:2]) + "\r\n" == BURGOS
    assert lines[2].startswith("Burgos,image03,1$image03,active,4096,md5master,tenant1id,True,")
    assert lines[3:] == [""]  # CRLF-terminated, nothing after


def test_upload_to_unknown_region_is_a_facade_error(offline_dir: Path) -> None:
    with pytest.raises(FacadeError, match="no file backup_Lisbon.csv"):
        upload(facade(offline_dir), "Lisbon", master_image())
    assert not (offline_dir / "backup_Lisbon.csv").exists()


# -- update -------------------------------------------------------------------------------
def test_update_applies_exactly_the_changes(offline_dir: Path) -> None:
    f = facade(offline_dir)
    before = f.list_images("Burgos")[0]
    f.update_image(
        "Burgos",
        "101",
        {"name": "image01.old", "visibility": "private", "type": "fiware", "new": "v", "nid": None},
    )
    after = f.list_images("Burgos")[0]
    assert after == before.copy(
        name="image01.old", visibility="private", properties={"type": "fiware", "new": "v"}
    )


def test_update_rewrites_only_the_changed_row(offline_dir: Path) -> None:
    f = facade(offline_dir)
    f.update_image("Burgos", "101", {"type": "other"})
    f.flush()
    lines = (offline_dir / "backup_Burgos.csv").read_bytes().decode().split("\r\n")
    assert lines[0].startswith("Burgos,image01,101,")
    assert "'type': 'other'" in lines[0]
    assert lines[1] + "\r\n" == BURGOS.split("\r\n")[1] + "\r\n"  # untouched, verbatim


def test_update_removing_an_absent_property_is_a_no_op(offline_dir: Path) -> None:
    f = facade(offline_dir)
    path = offline_dir / "backup_Burgos.csv"
    f.update_image("Burgos", "102", {"missing": None})
    f.flush()
    assert path.read_bytes() == BURGOS.encode()


@pytest.mark.parametrize("changes", [{"visibility": "everyone"}, {"owner": "x"}, {"size": "1"}])
def test_update_refuses_what_glance_refuses(offline_dir: Path, changes: dict) -> None:
    f = facade(offline_dir)
    with pytest.raises(FacadeError, match="Burgos: "):
        f.update_image("Burgos", "101", changes)
    f.flush()
    assert (offline_dir / "backup_Burgos.csv").read_bytes() == BURGOS.encode()


def test_update_unknown_id_is_a_facade_error(offline_dir: Path) -> None:
    with pytest.raises(FacadeError, match="Burgos: no image with id nope"):
        facade(offline_dir).update_image("Burgos", "nope", {"name": "x"})


# -- delete -------------------------------------------------------------------------------
def test_delete_removes_the_image(offline_dir: Path) -> None:
    f = facade(offline_dir)
    f.delete_image("Burgos", "101")
    assert ids(f, "Burgos") == ["102"]


def test_delete_of_an_image_already_gone_is_no_error_and_changes_nothing(
    offline_dir: Path,
) -> None:
    before = (offline_dir / "backup_Burgos.csv").read_bytes()
    f = facade(offline_dir)
    f.delete_image("Burgos", "nope")  # as Glance's 404 to a retried delete
    f.flush()
    assert (offline_dir / "backup_Burgos.csv").read_bytes() == before
    assert facade(offline_dir).get_image("Burgos", "nope") is None


def test_delete_of_a_protected_image_is_refused(offline_dir: Path) -> None:
    f = facade(offline_dir)
    new = upload(f, "Empty", master_image(protected=True))
    with pytest.raises(FacadeError, match=r"^Empty: image image02 \(1\$image02\) is protected$"):
        f.delete_image("Empty", new.id)
    assert ids(f, "Empty") == ["1$image02"]


# -- download -----------------------------------------------------------------------------
def test_download_is_refused(offline_dir: Path) -> None:
    with pytest.raises(FacadeError, match="offline regions hold no image data"):
        facade(offline_dir).download("Burgos", "101")


# -- atomic writes ------------------------------------------------------------------------
def test_writes_leave_no_temporary_file(offline_dir: Path) -> None:
    f = facade(offline_dir)
    before = sorted(os.listdir(offline_dir))
    upload(f, "Empty", master_image())
    f.update_image("Empty", "1$image02", {"name": "renamed"})
    f.delete_image("Burgos", "101")
    f.flush()
    assert sorted(os.listdir(offline_dir)) == before


def test_a_failed_write_leaves_the_original_intact(
    offline_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(glancesync.backup.os, "replace", broken_replace)
    before = sorted(os.listdir(offline_dir))
    f = facade(offline_dir)
    f.delete_image("Burgos", "101")
    with pytest.raises(FacadeError, match="cannot write .*backup_Burgos.csv: No space left"):
        f.flush()
    assert (offline_dir / "backup_Burgos.csv").read_bytes() == BURGOS.encode()
    assert sorted(os.listdir(offline_dir)) == before
    # The change is still held: once the disk has room, the next flush writes it.
    monkeypatch.undo()
    f.flush()
    assert ids(facade(offline_dir), "Burgos") == ["102"]


def test_an_error_in_the_middle_of_writing_leaves_the_original_intact(
    offline_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer dies after the first row: a direct write would leave half a file.
    real_to_csv_row = Image.to_csv_row

    def dies_on_the_new_row(self: Image) -> list[str]:
        if self.id == "1$image03":
            raise KeyboardInterrupt
        return real_to_csv_row(self)

    f = facade(offline_dir)
    f.update_image("Burgos", "101", {"name": "changed"})  # row 1 is now re-serialised
    f.flush()
    content = (offline_dir / "backup_Burgos.csv").read_bytes()
    monkeypatch.setattr(Image, "to_csv_row", dies_on_the_new_row)
    before = sorted(os.listdir(offline_dir))
    upload(f, "Burgos", master_image("image03"))
    with pytest.raises(KeyboardInterrupt):
        f.flush()
    assert (offline_dir / "backup_Burgos.csv").read_bytes() == content
    assert sorted(os.listdir(offline_dir)) == before


def test_rewrite_keeps_the_file_mode(offline_dir: Path) -> None:
    path = offline_dir / "backup_Burgos.csv"
    path.chmod(0o640)
    f = facade(offline_dir)
    f.delete_image("Burgos", "101")
    f.flush()
    assert path.stat().st_mode & 0o777 == 0o640


# -- several facades ----------------------------------------------------------------------
def test_a_second_facade_sees_the_first_ones_writes_once_flushed(offline_dir: Path) -> None:
    first, second = facade(offline_dir), facade(offline_dir)
    upload(first, "Empty", master_image())
    assert ids(second, "Empty") == []
    first.flush("Empty")
    assert ids(second, "Empty") == ["1$image02"]
    assert upload(second, "Empty", master_image()).id == "2$image02"
    second.flush()
    first.update_image("Empty", "2$image02", {"name": "image02.old"})
    first.flush()
    second.delete_image("Empty", "1$image02")
    second.flush()
    assert [(i.id, i.name) for i in first.list_images("Empty")] == [("2$image02", "image02.old")]


def test_targets_sharing_a_directory_do_not_mix(offline_dir: Path) -> None:
    master, other = facade(offline_dir), facade(offline_dir, "other", tenant_name="tenant2")
    (offline_dir / "backup_Madrid.csv").write_bytes(b"")
    upload(other, "Madrid", master_image())
    assert ids(master, "Madrid") == []
    assert ids(other, "Madrid") == ["199", "1$image02"]


# -- one read and one write per region ----------------------------------------------------
@pytest.fixture
def file_io(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Counts the region files read and written through the facade."""
    import glancesync.facade.offline as offline

    seen: dict[str, list[str]] = {"read": [], "write": []}
    real_read, real_write = offline.read_backup_rows, offline.write_csv_atomic

    def read(path: str, region: str | None = None, **options):
        seen["read"].append(os.path.basename(path))
        return real_read(path, region, **options)

    def write(path: str, rows):
        seen["write"].append(os.path.basename(path))
        return real_write(path, rows)

    monkeypatch.setattr(offline, "read_backup_rows", read)
    monkeypatch.setattr(offline, "write_csv_atomic", write)
    return seen


def test_many_changes_cost_one_read_and_one_write_of_the_region(
    offline_dir: Path, file_io: dict[str, list[str]]
) -> None:
    f = facade(offline_dir)
    for n in range(200):
        f.update_image("Burgos", "101", {"nid": str(n)})
        upload(f, "Burgos", master_image(f"new{n}"))
        assert f.get_image("Burgos", "102") is not None
    f.delete_image("Burgos", "102")
    assert len(f.list_images("Burgos")) == 201
    assert (offline_dir / "backup_Burgos.csv").read_bytes() == BURGOS.encode()  # held back
    f.flush()
    f.flush()  # nothing new: not written again
    assert file_io == {"read": ["backup_Burgos.csv"], "write": ["backup_Burgos.csv"]}
    again = facade(offline_dir).list_images("Burgos")
    assert [i.id for i in again] == ["101"] + [f"1$new{n}" for n in range(200)]
    assert again[0].properties["nid"] == "199"


def test_flush_writes_only_the_regions_that_changed(
    offline_dir: Path, file_io: dict[str, list[str]]
) -> None:
    f = facade(offline_dir)
    f.list_images("Valladolid")
    f.delete_image("Burgos", "101")
    f.flush("Valladolid")
    assert file_io["write"] == []
    f.flush()
    assert file_io["write"] == ["backup_Burgos.csv"]


def test_a_listing_is_a_snapshot_the_facade_never_changes(offline_dir: Path) -> None:
    # Listings share the facade's images (no copy per image), so the facade must never
    # change one in place: an update stores a new image.
    f = facade(offline_dir)
    listed = f.list_images("Burgos")
    before = copy.deepcopy(listed)
    f.update_image("Burgos", "101", {"name": "renamed", "nid": "changed"})
    f.delete_image("Burgos", listed[-1].id)
    assert listed == before
    assert f.get_image("Burgos", "101").name == "renamed"
    assert f.get_image("Burgos", "101").properties["nid"] == "changed"
    fetched = f.get_image("Burgos", "101")
    fetched.properties["nid"] = "local"  # get_image gives a copy of its own
    assert f.get_image("Burgos", "101").properties["nid"] == "changed"


def test_unsaved_changes_win_over_a_file_changed_meanwhile(offline_dir: Path) -> None:
    # Last writer wins, as documented: a run holding changes of a region writes them.
    f = facade(offline_dir)
    f.delete_image("Burgos", "101")
    (offline_dir / "backup_Burgos.csv").write_text(VALLADOLID.replace("Valladolid", "Burgos"))
    assert ids(f, "Burgos") == ["102"]
    f.flush()
    assert ids(facade(offline_dir), "Burgos") == ["102"]


def test_threads_changing_regions_at_once_lose_nothing(offline_dir: Path) -> None:
    import threading

    f = facade(offline_dir)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                upload(f, "Empty", master_image("shared"))  # same name: seq ids must not clash
                f.update_image("Burgos", "101", {f"t{n}_{i}": "x"})
                upload(f, "Valladolid", master_image(f"t{n}_{i}"))
            f.flush("Valladolid")
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    f.flush()
    fresh = facade(offline_dir)
    assert sorted(ids(fresh, "Empty")) == sorted(f"{s}$shared" for s in range(1, 201))
    burgos = fresh.get_image("Burgos", "101")
    assert burgos is not None
    assert {f"t{n}_{i}" for n in range(4) for i in range(50)} <= set(burgos.properties)
    assert len(ids(fresh, "Valladolid")) == 201


def test_forget_drops_a_clean_region_and_keeps_unsaved_changes(offline_dir: Path, file_io) -> None:
    f = facade(offline_dir)
    f.list_images("Burgos")
    f.forget("Burgos")
    f.list_images("Burgos")
    assert file_io["read"] == ["backup_Burgos.csv", "backup_Burgos.csv"]  # read again
    f.update_image("Burgos", "101", {"name": "renamed"})
    f.forget("Burgos")  # unsaved: kept
    assert f.get_image("Burgos", "101").name == "renamed"
    f.flush()
    assert file_io["read"] == ["backup_Burgos.csv", "backup_Burgos.csv"]
    assert file_io["write"] == ["backup_Burgos.csv"]


def test_a_read_only_facade_refuses_every_write_and_keeps_no_rows(offline_dir: Path) -> None:
    # What statuses, dry runs and backups use: nothing they do can change a region file.
    f = OfflineFacade("master", str(offline_dir), tenant_name="tenant1", read_only=True)
    before = {p.name: p.read_bytes() for p in offline_dir.iterdir() if p.is_file()}
    master = f.list_images("Burgos")[0]
    writes = [
        lambda: f.update_image("Burgos", "101", {"name": "x"}),
        lambda: f.delete_image("Burgos", "101"),
        lambda: f.upload_image("Burgos", master, source_for(master)),
    ]
    for write in writes:
        with pytest.raises(FacadeError, match="Burgos: read-only here"):
            write()
    f.flush()
    assert {p.name: p.read_bytes() for p in offline_dir.iterdir() if p.is_file()} == before
    assert f._files["Burgos"].rows == {}
