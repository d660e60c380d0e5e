"""Backups: ``backup_glance_<timestamp>/backup_<region fullname>.csv``.

A backup directory is also a valid offline directory (glancesync.facade.offline), so the
reading and atomic-writing helpers live here and the offline facade reuses them.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator
from datetime import datetime

from glancesync.exceptions import BadInput, FacadeError
from glancesync.image import Image, RowTail, row_tail

BACKUP_DIR_PREFIX = "backup_glance_"
BACKUP_FILE_PREFIX = "backup_"
BACKUP_FILE_SUFFIX = ".csv"
# target,project id of each target backed up: offline replays then see the same owners.
TENANTS_FILE = "tenants.csv"


def backup_filename(fullname: str) -> str:
    # The old tool wrote "backup_other:Madrid.csv"; the ":" is kept so old backups and
    # ours are interchangeable offline directories.
    return f"{BACKUP_FILE_PREFIX}{fullname}{BACKUP_FILE_SUFFIX}"


def backup_dirname(now: datetime | None = None) -> str:
    """``backup_glance_2026-11-23T12-54-26.117838`` (local time).

    Unlike the old ``isoformat()`` name there is no ``:`` (it broke paths on some systems), and the
    microseconds are always present so names have a fixed width and sort by time.
    """
    now = now or datetime.now()
    return BACKUP_DIR_PREFIX + now.strftime("%Y-%m-%dT%H-%M-%S.%f")


def make_backup_dir(base: str = ".", now: datetime | None = None) -> str:
    """Create and return a new, empty backup directory under ``base``.

    The name is never reused: if it exists (two runs in the same microsecond, a clock
    set back), ``-2``, ``-3``... is appended. ``os.mkdir`` is the existence test, so two
    concurrent runs cannot both get the same directory.
    """
    name = backup_dirname(now)
    try:
        os.makedirs(base, exist_ok=True)
        suffix = 1
        while True:
            path = os.path.join(base, name if suffix == 1 else f"{name}-{suffix}")
            try:
                os.mkdir(path)
                return path
            except FileExistsError:
                suffix += 1
    except OSError as exc:
        raise FacadeError(f"cannot create a backup directory in {base}: {_reason(exc)}") from exc


def write_backup(directory: str, fullname: str, images: list[Image]) -> str:
    """Write ``directory/backup_<fullname>.csv`` atomically; returns its path.

    Rows are sorted by (name, id) so two backups of the same region diff cleanly.
    Field 1 is always ``fullname``: the file name and the rows must agree.
    """
    path = os.path.join(directory, backup_filename(fullname))
    rows = []
    for image in sorted(images, key=lambda i: (i.name or "", i.id)):
        row = image.to_csv_row()
        row[0] = fullname
        rows.append(row)
    write_csv_atomic(path, rows)
    return path


def write_tenants(directory: str, tenant_ids: dict[str, str]) -> None:
    write_csv_atomic(os.path.join(directory, TENANTS_FILE), sorted(tenant_ids.items()))


def read_tenants(directory: str) -> dict[str, str]:
    """target -> project id recorded by a backup; empty when the file is absent."""
    path = os.path.join(directory, TENANTS_FILE)
    if not os.path.isfile(path):
        return {}
    rows = csv.reader(io.StringIO(_read_text(path)))
    return {row[0]: row[1] for row in rows if len(row) >= 2 and row[0] and row[1]}


def read_backup(path: str, region: str | None = None) -> list[Image]:
    """The images of one backup file, in file order.

    ``region`` (a fullname) overrides field 1 of every row. Raises FacadeError naming the
    file and line of the first malformed row.
    """
    images, _rows = read_backup_rows(path, region, keep_rows=False)
    return list(images.values())


def read_backup_rows(
    path: str, region: str | None = None, keep_rows: bool = True
) -> tuple[dict[str, Image], dict[str, list[str]]]:
    """Like read_backup, by image id (in file order), with each image's raw row (to
    rewrite it unchanged; none with ``keep_rows=False``)."""
    images: dict[str, Image] = {}
    rows: dict[str, list[str]] = {}
    from_fields, from_csv_row = Image.from_fields, Image.from_csv_row
    text = _read_text(path)
    # Reading makes several objects per row and no reference cycle, but each of them
    # counts toward the cyclic collector's thresholds: with many big files in memory its
    # full passes over the ever larger heap took half the reading time. It is paused for
    # the reading (and resumed as it was, whatever happens).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for line, fields, tail in _records(path, text):
            if tail is not None:
                image = from_fields(fields[0] if region is None else region, fields[1],
                                    fields[2], tail[1])  # fmt: skip
            else:
                if len(fields) < 9 or not fields[2].strip():  # (a row with an id is not blank)
                    if not "".join(fields).strip():
                        continue  # blank lines were skipped by the old tool too
                try:
                    image = from_csv_row(fields, region)
                except ValueError as exc:
                    raise BadInput(f"{path}, line {line}: {exc}") from exc
            image_id = image.id
            if images.setdefault(image_id, image) is not image:
                first = next(n for n, f, _ in _records(path, text) if f[2:3] == [image_id])
                raise BadInput(
                    f"{path}, line {line}: duplicate image id {image_id!r} "
                    f"(first on line {first})"
                )
            if keep_rows:
                rows[image_id] = fields if tail is None else [*fields[:3], *tail[0]]
    finally:
        if collecting:
            gc.enable()
    return images, rows


Tail = tuple[tuple[str, ...], RowTail]  # fields 4-17 of a row: as read, as Image values
Record = tuple[int, list[str], Tail | None]

# Fields 4-17 of the rows read (the text after the third comma -> Tail), shared by the
# reads of a run (and of a server's requests). Bounded: emptied when full.
_TAILS: dict[str, Tail] = {}
_MAX_TAILS = 1 << 14
# Lines read before deciding how to read the rest of a file (see _records).
_PROBE = 64
_LONE_CR = re.compile("\r(?!\n)")


def _records(path: str, text: str) -> Iterator[Record]:
    """The records of a backup file's text, exactly as ``csv.reader`` (excel dialect)
    reads them: ``(line, fields, tail)``, ``line`` being where the record starts.

    A region's copies usually have their master's very fields 4-17 (status to hidden:
    all but the region, name and id), in every region file. So for a one-line record
    whose region, name and id hold no quote, those others are read and converted once
    per text (``_TAILS``): ``tail`` is them, and ``fields`` the first three at least.
    Any other record (quoted names, fields spanning lines, malformed rows) has every
    field in ``fields`` and ``tail`` None.

    A file is read line by line, each line split at its first three commas and looked up
    (most lines of a copy's file were seen before), or, when most of its first lines were
    not seen before (the first file read, or copies with other owners or properties), by
    csv, which is then faster (see _csv_records for what it caches).
    """
    if "\x00" in text or _LONE_CR.search(text):
        # A lone CR ends a line for csv, and a NUL is an error: csv reads such a file
        # (glancesync never writes one), without the cache (lines are not records).
        yield from _csv_records(path, io.StringIO(text, newline=""), None)
        return
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # the text ends with a line end
    limit = csv.field_size_limit()  # (no field of a shorter line can go beyond it)
    tails, seen, probing, first = _TAILS, 0, True, not _TAILS
    n, count = 0, len(lines)
    while n < count:
        if probing and n >= _PROBE:
            probing = False
            if seen < _PROBE // 2:
                yield from _csv_records(path, _lines_from(lines, n, text), lines, n, first)
                return
        line = lines[n]
        n += 1
        parts = line.split(",", 3)
        if (
            len(parts) == 4
            and parts[2].strip()
            and '"' not in parts[0]
            and '"' not in parts[1]
            and '"' not in parts[2]
            and len(line) <= limit
        ):
            key = parts[3]  # (with the "\r" of a "\r\n" line end: it ends csv's line too)
            tail = tails.get(key)
            if tail is not None:
                seen += 1
                yield n, parts, tail
                continue
            tail = _line_tail(key)
            if tail is not None:
                yield n, parts, tail
                continue
        # csv reads this record from its first line on, as many lines as it spans.
        reader = csv.reader(_lines_from(lines, n - 1, text), dialect="excel")
        try:
            row = next(reader)
        except csv.Error as exc:
            raise BadInput(f"{path}, line {n}: not valid CSV: {exc}") from exc
        yield n, row, None
        n += reader.line_num - 1


def _csv_records(
    path: str,
    source: Iterable[str],
    lines: list[str] | None,
    skipped: int = 0,
    first: bool = False,
) -> Iterator[Record]:
    """csv's records of ``source``: the text's ``lines`` after the first ``skipped``
    ones (or the text's lines, ``lines`` None: then the cache is not used). The cache is
    filled from the first file read (``first``: the copies read next are compared with
    it); from another file only while some of its lines are found there (copies with
    other owners or properties than anything read before: caching them only costs)."""
    reader = csv.reader(source, dialect="excel")
    start = skipped + 1  # where the next record starts
    filling, found = lines is not None, first
    try:
        for row in reader:
            end = skipped + reader.line_num  # its last line
            tail = None
            # A record of one line, not the last (there, a quoted field may end with the
            # text: read in the middle of a file, the same line would go on).
            if filling and end == start < len(lines) and len(row) > 3 and row[2].strip():
                line = lines[start - 1]
                # The first three fields' text is their value when it holds no quote.
                offset = len(row[0]) + len(row[1]) + len(row[2]) + 3
                if '"' not in line[:offset]:
                    key = line[offset:]
                    tail = _TAILS.get(key)
                    if tail is None:
                        tail = _converted(key, row[3:])
                    else:
                        found = True
            yield start, row, tail
            start = end + 1
            if not found and start > skipped + _PROBE:
                filling = False
    except csv.Error as exc:
        raise BadInput(f"{path}, line {start}: not valid CSV: {exc}") from exc


def _lines_from(lines: list[str], start: int, text: str) -> Iterator[str]:
    # The lines as they are in the text: with their "\n", but for a last one without.
    last = len(lines) - 1
    for n in range(start, last + 1):
        yield lines[n] if n == last and not text.endswith("\n") else lines[n] + "\n"


def _line_tail(text: str) -> Tail | None:
    """Fields 4-17 of a one-line record from their text (after the third comma). None
    when csv would read past the line (a quoted field goes on) or they are malformed:
    csv reads that record and the caller reports it."""
    reader = csv.reader((text, ""), dialect="excel")
    try:
        fields = next(reader)
    except csv.Error:
        return None
    return None if reader.line_num > 1 else _converted(text, fields)


def _converted(key: str, fields: list[str]) -> Tail | None:
    try:
        tail = tuple(fields), row_tail(fields)
    except ValueError:
        return None  # (reported by from_csv_row with the line)
    _remember(key, tail)
    return tail


def _remember(key: str, tail: Tail) -> None:
    if len(_TAILS) >= _MAX_TAILS:
        _TAILS.clear()
    _TAILS[key] = tail


def _read_text(path: str) -> str:
    # Decoded in one go (backups are metadata only, small) so a bad byte can be reported
    # with its line; utf-8-sig drops the BOM a spreadsheet may add when the file is edited.
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise FacadeError(f"cannot read {path}: {_reason(exc)}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise BadInput(f"{path}, line {line}: not UTF-8 text ({exc.reason})") from exc


def write_csv_atomic(path: str, rows: Iterable[list[str]]) -> None:
    """Replace ``path`` with ``rows`` (excel dialect, ``\\r\\n``) all at once or not at all.

    The rows go to a temporary file in the same directory (same filesystem, so
    ``os.replace`` is atomic), which is fsynced before the rename: a crash or an exception
    leaves either the old file or the new one, never half of one. The temporary name is
    unique per writer and starts with ``.`` so it never looks like a region file.
    """
    directory, base = os.path.split(path)
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            # "x" honours the umask (unlike mkstemp's 0600), so new files get the same
            # mode as any file the user creates there.
            with open(tmp, "x", newline="", encoding="utf-8") as f:
                writer = csv.writer(f, dialect="excel")
                for row in rows:
                    writer.writerow(row)
                f.flush()
                os.fsync(f.fileno())
            _copy_mode(path, tmp)
            os.replace(tmp, path)
        except BaseException:
            # BaseException too: a KeyboardInterrupt must not leave the .tmp behind.
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        _fsync_dir(directory)
    except OSError as exc:
        raise FacadeError(f"cannot write {path}: {_reason(exc)}") from exc


def _copy_mode(original: str, tmp: str) -> None:
    # A rewrite must not change the permissions the user gave the file.
    try:
        mode = stat.S_IMODE(os.stat(original).st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not possible on every platform/filesystem, and
    # the data is already safe, so failing here is not an error.
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
