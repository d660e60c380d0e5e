"""Backups: directory naming, CSV files, and their reuse as offline directories."""

from __future__ import annotations

import csv
import io
import os
import random
from datetime import datetime
from pathlib import Path

import pytest

import glancesync.backup
from glancesync.backup import (
    backup_dirname,
    make_backup_dir,
    read_backup,
    write_backup,
)
from glancesync.exceptions import BadInput, FacadeError
from glancesync.facade.offline import OfflineFacade
from glancesync.image import Image

NOW = datetime(2026, 11, 23, 12, 54, 26, 117838)


def image(region: str, name: str | None, id: str, **changes) -> Image:
    fields = dict(
        id=id,
        name=name,
        region=region,
        owner="tenant1id",
        checksum=f"md5-{id}",
        size=1024,
        properties={"type": "ngimages"},
    )
    fields.update(changes)
    return Image(**fields)


# -- directory names ----------------------------------------------------------------------
def test_backup_dirname_is_an_iso_timestamp_without_colons() -> None:
    assert backup_dirname(NOW) == "backup_glance_2026-11-23T12-54-26.117838"


def test_backup_dirname_keeps_zero_microseconds() -> None:
    # isoformat() drops them, which made the old names of different widths.
    assert (
        backup_dirname(datetime(2026, 1, 2, 3, 4, 5)) == "backup_glance_2026-01-02T03-04-05.000000"
    )


def test_backup_dirnames_sort_by_time() -> None:
    times = [
        datetime(2026, 1, 2, 3, 4, 5),
        datetime(2026, 1, 2, 3, 4, 5, 1),
        datetime(2026, 1, 2, 13, 0, 0),
        datetime(2026, 10, 1, 0, 0, 0),
    ]
    names = [backup_dirname(t) for t in times]
    assert sorted(names) == names


def test_backup_dirname_defaults_to_now() -> None:
    name = backup_dirname()
    assert name.startswith("backup_glance_") and ":" not in name


def test_make_backup_dir_creates_it(tmp_path: Path) -> None:
    path = make_backup_dir(str(tmp_path), now=NOW)
    assert path == str(tmp_path / "backup_glance_2026-11-23T12-54-26.117838")
    assert os.path.isdir(path) and os.listdir(path) == []


def test_make_backup_dir_never_reuses_a_directory(tmp_path: Path) -> None:
    paths = [make_backup_dir(str(tmp_path), now=NOW) for _ in range(3)]
    base = str(tmp_path / "backup_glance_2026-11-23T12-54-26.117838")
    assert paths == [base, base + "-2", base + "-3"]


def test_make_backup_dir_creates_the_base(tmp_path: Path) -> None:
    path = make_backup_dir(str(tmp_path / "backups"), now=NOW)
    assert os.path.isdir(path)


def test_make_backup_dir_failure_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(FacadeError, match="cannot create a backup directory in"):
        make_backup_dir(str(tmp_path / "file"), now=NOW)


def test_make_backup_dir_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = make_backup_dir()
    assert os.path.dirname(path) == "." and os.path.isdir(tmp_path / os.path.basename(path))


# -- files --------------------------------------------------------------------------------
def test_write_backup_file_name_format_and_order(tmp_path: Path) -> None:
    images = [
        image("Burgos", "image02", "b"),
        image("Burgos", "image01", "z"),
        image("Burgos", None, "n"),
        image("Burgos", "image01", "a", visibility="private", properties={"nid": "1", "t": "x"}),
    ]
    path = write_backup(str(tmp_path), "Burgos", images)
    assert path == str(tmp_path / "backup_Burgos.csv")
    lines = Path(path).read_bytes().decode().split("\r\n")
    assert lines[-1] == ""  # every row ends with CRLF
    assert [line.split(",")[1:3] for line in lines[:-1]] == [
        ["", "n"],
        ["image01", "a"],
        ["image01", "z"],
        ["image02", "b"],
    ]
    assert lines[1].startswith(
        "Burgos,image01,a,active,1024,md5-a,tenant1id,False,\"{'nid': '1', 't': 'x'}\","
    )


def test_write_backup_of_no_images_is_an_empty_file(tmp_path: Path) -> None:
    path = write_backup(str(tmp_path), "other:Madrid", [])
    assert path == str(tmp_path / "backup_other:Madrid.csv")
    assert Path(path).read_bytes() == b""


def test_write_backup_rows_carry_the_file_region(tmp_path: Path) -> None:
    path = write_backup(str(tmp_path), "other:Madrid", [image("", "x", "1")])
    assert Path(path).read_text().startswith("other:Madrid,x,1,")


def test_write_then_read_gives_the_same_images(tmp_path: Path) -> None:
    images = [
        image(
            "other:Madrid",
            "image01",
            "1",
            visibility="community",
            os_hash_algo="sha512",
            os_hash_value="abc",
            disk_format="qcow2",
            container_format="bare",
            min_ram=1,
            min_disk=2,
            protected=True,
            properties={"text": 'a, "quoted"\nvalue', "nid": "3"},
        ),
        image("other:Madrid", "image02", "2", owner=None, checksum=None),
    ]
    path = write_backup(str(tmp_path), "other:Madrid", images)
    assert read_backup(path) == images


def test_read_backup_region_overrides_the_rows(tmp_path: Path) -> None:
    path = write_backup(str(tmp_path), "Burgos", [image("Burgos", "x", "1")])
    assert [i.region for i in read_backup(path, region="Copy")] == ["Copy"]


def test_read_backup_of_an_old_tool_file(tmp_path: Path) -> None:
    path = tmp_path / "backup_Burgos.csv"
    path.write_bytes(
        b"Burgos,image01,101,active,1073741824,ddfe16,tenant1id,True,"
        b"\"{u'type': u'ngimages', u'nid': 1}\"\r\n"
    )
    [old] = read_backup(str(path))
    assert (old.region, old.id, old.visibility) == ("Burgos", "101", "public")
    assert old.properties == {"type": "ngimages", "nid": "1"}


def test_read_backup_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(FacadeError, match="cannot read .*backup_None.csv"):
        read_backup(str(tmp_path / "backup_None.csv"))
    bad = tmp_path / "backup_Bad.csv"
    bad.write_text("Bad,x,1,active,0,,,maybe,{}\r\n")
    with pytest.raises(FacadeError, match=r"backup_Bad.csv, line 1: unknown visibility 'maybe'"):
        read_backup(str(bad))


def test_write_backup_replaces_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_backup(str(tmp_path), "Burgos", [image("Burgos", "x", "1")])
    content = Path(path).read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(glancesync.backup.os, "fsync", broken_fsync)
    with pytest.raises(FacadeError, match="cannot write .*backup_Burgos.csv: Input/output error"):
        write_backup(str(tmp_path), "Burgos", [image("Burgos", "y", "2")])
    assert Path(path).read_bytes() == content
    assert os.listdir(tmp_path) == ["backup_Burgos.csv"]


# -- a backup directory is an offline directory -------------------------------------------
def test_backup_directory_is_a_valid_offline_directory(tmp_path: Path) -> None:
    listed = {
        "Burgos": [image("Burgos", "image01", "101"), image("Burgos", "image02", "102")],
        "Valladolid": [image("Valladolid", "image01", "201", visibility="shared")],
        "other:Madrid": [image("other:Madrid", "image01", "301", owner="tenant2id")],
    }
    directory = make_backup_dir(str(tmp_path), now=NOW)
    for fullname, images in listed.items():
        write_backup(directory, fullname, images)

    master = OfflineFacade("master", directory, tenant_id=None, tenant_name="tenant1")
    other = OfflineFacade("other", directory, tenant_id=None, tenant_name="tenant2")
    assert master.regions() == ["Burgos", "Valladolid"]
    assert other.regions() == ["Madrid"]
    assert master.list_images("Burgos") == listed["Burgos"]
    assert master.list_images("Valladolid") == listed["Valladolid"]
    assert other.list_images("Madrid") == listed["other:Madrid"]


def test_reading_leaves_the_cyclic_collector_as_it_found_it(tmp_path: Path) -> None:
    """Reading pauses the collector; a good file, a malformed one and a caller that had
    it off already all leave it in its previous state."""
    import gc

    good = tmp_path / "backup_Good.csv"
    good.write_text("Good,img,id1,active,1,md5,t,True,{}\r\n")
    bad = tmp_path / "backup_Bad.csv"
    bad.write_text("Bad,img,id1,active,1,md5,t,True,{not a dict\r\n")
    was = gc.isenabled()
    try:
        gc.enable()
        assert [i.id for i in glancesync.backup.read_backup(str(good))] == ["id1"]
        assert gc.isenabled()
        with pytest.raises(FacadeError, match="line 1"):
            glancesync.backup.read_backup(str(bad))
        assert gc.isenabled()
        gc.disable()
        glancesync.backup.read_backup(str(good))
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()


# -- reading: plain lines split by hand, anything else by csv -----------------------------
def _csv_records(text: str) -> list[tuple[int, list[str]]] | int:
    """What csv.reader (excel) reads: (first line, fields) per record, or the line of
    its error."""
    reader = csv.reader(io.StringIO(text, newline=""), dialect="excel")
    records, start = [], 1
    try:
        for row in reader:
            records.append((start, row))
            start = reader.line_num + 1
    except csv.Error:
        return start
    return records


def _our_records(text: str) -> list[tuple[int, list[str]]] | int:
    try:
        return [
            (line, fields if tail is None else [*fields[:3], *tail[0]])
            for line, fields, tail in glancesync.backup._records("f", text)
        ]
    except BadInput as exc:
        return int(str(exc).split("line ")[1].split(":")[0])


ROW = (
    "R,image01,id1,active,1024,md5,t1,True,\"{'nid': '1', 'a': 'b, c'}\","
    "sha512,ff,qcow2,bare,0,0,False,False"
)
PIECES = [ROW, ROW, "R,n,i,a", "R,", ",id9,", "x", "", ",", ",,,", '"', '""', '"a,b"', "a\"b",
          ",\"x\ny\",",
          "\r\n", "\n", "\n", "\r", " ", "\x00", "é", '"\r\n"']  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_records_are_exactly_what_csv_reads(seed: int) -> None:
    """Lines are split at their first commas when that gives what csv gives: the same
    records, fields and line numbers (and the same error line) for any text."""
    rng = random.Random(seed)
    for _ in range(100):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        if rng.random() < 0.5:
            text = "\r\n".join([ROW] * rng.randint(0, 3) + [text] + [ROW] * rng.randint(0, 3))
        if rng.random() < 0.2:  # lines never read before, then the rest as csv reads it
            new = [ROW.replace("1024", f"{seed}.{rng.random()}") for _ in range(70)]
            text = "\r\n".join([*new, text])
        assert _our_records(text) == _csv_records(text), repr(text)
    for text, (fields, _values) in glancesync.backup._TAILS.items():
        reader = csv.reader((text, ""))  # each text has its own fields, on one line
        assert (next(reader), reader.line_num) == (list(fields), 1), repr(text)


def test_plain_lines_take_the_split_path() -> None:
    records = list(glancesync.backup._records("f", f"{ROW}\r\n{ROW}\n"))
    assert [(line, tail is not None) for line, _, tail in records] == [(1, True), (2, True)]
    quoted = list(glancesync.backup._records("f", '"R",n,i,' + ROW.split(",", 3)[3]))
    assert quoted[0][2] is None  # a quoted region: csv reads it


def test_fields_read_once_are_shared_by_later_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fields 4-17 are read and converted once per text, whether a file is read line by
    line (most of its lines seen before) or by csv (mostly new lines, as the first file
    read): later lines with the same text get the very same values."""
    monkeypatch.setattr(glancesync.backup, "_TAILS", {})

    def tails(first: int) -> list[object]:
        sizes = range(first, first + 200)
        text = "".join(ROW.replace("1024", f"{n}").replace("id1", f"{n}") + "\n" for n in sizes)
        text += '"a quoted region",x,y\n'  # (never cached)
        return [tail for _, _, tail in glancesync.backup._records("f", text)][:-1]

    first = tails(1000)  # new lines: read by csv
    assert all(tail is not None for tail in first)
    assert len(glancesync.backup._TAILS) == 200
    again = tails(1000)  # seen lines: split by hand and looked up
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert tails(1100)[:100] == first[100:]  # half seen, half new
    assert len(glancesync.backup._TAILS) == 300
    # A file of other copies (none of its lines seen): after its first lines, csv reads
    # it without caching (filling the cache with what nothing shares only costs).
    others = tails(5000)
    probe = glancesync.backup._PROBE
    assert all(tail is not None for tail in others[: 2 * probe])
    assert all(tail is None for tail in others[2 * probe :])
    assert len(glancesync.backup._TAILS) == 300 + 2 * probe


def test_the_shared_fields_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glancesync.backup, "_TAILS", {})
    monkeypatch.setattr(glancesync.backup, "_MAX_TAILS", 50)
    text = "".join(ROW.replace("1024", f"{n}") + "\n" for n in range(500))
    records = list(glancesync.backup._records("f", text))
    assert all(tail is not None for _, _, tail in records[:-1])
    assert 0 < len(glancesync.backup._TAILS) <= 50


def test_read_backup_of_mixed_lines_gives_what_csv_gives(tmp_path: Path) -> None:
    """Rows read by hand and rows read by csv make the same images, whatever their form:
    quoted names, a properties value spanning lines, 9-field rows, blank lines."""
    text = "\r\n".join([
        ROW,
        ROW.replace("id1", "id2").replace("image01", '"image, 02"'),
        ROW.replace("id1", "id3").replace("image01", '"line1\nline2"'),
        "",
        "R,image04,id4,active,1,md5,t1,False,{}",
        ROW.replace("id1", "id5").replace(",1024,", ",2048,"),
        ROW.replace("id1", "id6"),
    ]) + "\r\n"  # fmt: skip
    path = tmp_path / "backup_R.csv"
    path.write_text(text, newline="")
    expected = {
        row[2]: Image.from_csv_row(row)
        for row in csv.reader(io.StringIO(text, newline=""))
        if row
    }
    images, rows = glancesync.backup.read_backup_rows(str(path))
    assert images == expected
    assert list(images) == ["id1", "id2", "id3", "id4", "id5", "id6"]
    assert rows == {row[2]: row for row in csv.reader(io.StringIO(text, newline="")) if row}
    assert images["id3"].name == "line1\nline2"


def test_images_with_the_same_fields_do_not_share_their_properties(tmp_path: Path) -> None:
    path = tmp_path / "backup_R.csv"
    path.write_text(f"{ROW}\r\n{ROW.replace('id1', 'id2')}\r\n")
    first, second = read_backup(str(path))
    first.properties["nid"] = "changed"
    assert second.properties["nid"] == "1"
    assert read_backup(str(path))[0].properties["nid"] == "1"


def test_read_errors_give_the_line_after_a_record_spanning_lines(tmp_path: Path) -> None:
    path = tmp_path / "backup_R.csv"
    spanning = ROW.replace("image01", '"x\ny"')
    path.write_text(f"{ROW}\r\n{spanning.replace('id1', 'id2')}\r\n"
                    f"{ROW.replace('id1', 'id3').replace(',1024,', ',big,')}\r\n")  # fmt: skip
    with pytest.raises(BadInput, match=r"backup_R.csv, line 4: size, min_ram or min_disk"):
        read_backup(str(path))


def test_rows_without_an_id_are_blank_or_errors(tmp_path: Path) -> None:
    path = tmp_path / "backup_R.csv"
    for rows in ([ROW.replace("id1", f"id{n}x") for n in range(100)], []):  # csv, by hand
        path.write_text("\r\n".join([*rows, ",,,,,,,,,,,,,,,,", ROW, " , , ,", ""]))
        assert len(read_backup(str(path))) == len(rows) + 1  # blank rows are skipped
        path.write_text("\r\n".join([*rows, ROW.replace("id1", " ")]))
        with pytest.raises(BadInput, match=rf"line {len(rows) + 1}: id field is empty"):
            read_backup(str(path))
        path.write_text("\r\n".join([*rows, "R,image9,id9,active,1,md5,t1,True"]))
        with pytest.raises(BadInput, match=rf"line {len(rows) + 1}: expected at least 9 fields"):
            read_backup(str(path))
