"""Backups: ``backup_glance_<timestamp>/backup_<region fullname>.csv``.

A backup directory is also a valid offline directory (glancesync.facade.offline), so the
reading and atomic-writing helpers live here and the offline facade reuses them.
"""

from __future__ import annotations

import csv
import functools
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
    first_line: dict[str, int] = {}
    from_fields, from_csv_row = Image.from_fields, Image.from_csv_row
    # Reading makes several objects per row and no reference cycle, but each of them
    # counts toward the cyclic collector's thresholds: with many big files in memory its
    # full passes over the ever larger heap took half the reading time. It is paused for
    # the reading (and resumed as it was, whatever happens).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for line, fields, tail in _records(path, _read_text(path)):
            if tail is not None:
                image = from_fields(fields[0] if region is None else region, fields[1],
                                    fields[2], tail[1])  # fmt: skip
                row = [fields[0], fields[1], fields[2], *tail[0]] if keep_rows else fields
            else:
                row = fields
                if len(row) < 9 or not row[2].strip():  # (a row with an id is not blank)
                    if not "".join(row).strip():
                        continue  # blank lines were skipped by the old tool too
                try:
                    image = from_csv_row(row, region)
                except ValueError as exc:
                    raise BadInput(f"{path}, line {line}: {exc}") from exc
            image_id = image.id
            if image_id in images:
                raise BadInput(
                    f"{path}, line {line}: duplicate image id {image_id!r} "
                    f"(first on line {first_line[image_id]})"
                )
            images[image_id] = image
            if keep_rows:
                rows[image_id] = row
            first_line[image_id] = line
    finally:
        if collecting:
            gc.enable()
    return images, rows


Record = tuple[int, list[str], "tuple[tuple[str, ...], RowTail] | None"]

# Lines read before deciding whether the cached fields pay for this file (see _records).
_PROBE = 64
_LONE_CR = re.compile("\r(?!\n)")


def _records(path: str, text: str) -> Iterator[Record]:
    """The records of a backup file's text, exactly as ``csv.reader`` (excel dialect)
    reads them: ``(line, fields, tail)``, ``line`` being where the record starts.

    A region's copies usually have their master's very fields 4-17 (status to hidden:
    all but the region, name and id), in every region file. So a line whose first three
    fields hold no quote is split at its first three commas, and the text of the others
    is read once per run (``_line_tail``, cached): then ``fields`` is the first three
    and ``tail`` those others, as read and as Image values. Any other record (quoted
    names, a field spanning lines, short or malformed rows) comes from csv with every
    field, and ``tail`` is None. When most of a file's first lines are new (its copies
    have other owners or properties than the files read before), csv reads the rest of
    it: line by line, caching would only cost. The first file read (the master, in a
    run) fills the cache whatever it holds: the copies read next are compared with it.
    """
    if "\x00" in text or _LONE_CR.search(text):
        # A lone CR ends a line for csv, and a NUL is an error: csv reads such a file
        # (glancesync never writes one).
        yield from _csv_records(path, io.StringIO(text, newline=""), 1)
        return
    lines = text.split("\n")
    if not lines[-1]:
        lines.pop()  # the text ends with a line end
    limit = csv.field_size_limit()  # (no field of a shorter line can go beyond it)
    n, count = 0, len(lines)
    cache = _line_tail.cache_info()
    misses, probing = cache.misses, cache.currsize > 0  # (the first file read fills it)
    while n < count:
        if probing and n >= _PROBE:
            probing = False
            if _line_tail.cache_info().misses - misses > _PROBE // 2:
                yield from _csv_records(path, _lines_from(lines, n, text), n + 1)
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
            rest = parts[3]
            tail = _line_tail(rest[:-1] if rest.endswith("\r") else rest)
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


def _csv_records(path: str, lines: Iterable[str], first: int) -> Iterator[Record]:
    """csv's records of ``lines``, the text's lines from line ``first`` on."""
    reader = csv.reader(lines, dialect="excel")
    start = first
    try:
        for row in reader:
            yield start, row, None
            start = first + reader.line_num
    except csv.Error as exc:
        raise BadInput(f"{path}, line {start}: not valid CSV: {exc}") from exc


def _lines_from(lines: list[str], start: int, text: str) -> Iterator[str]:
    # The lines as they are in the text: with their "\n", but for a last one without.
    last = len(lines) - 1
    for n in range(start, last + 1):
        yield lines[n] if n == last and not text.endswith("\n") else lines[n] + "\n"


@functools.lru_cache(maxsize=1 << 14)
def _line_tail(text: str) -> tuple[tuple[str, ...], RowTail] | None:
    """Fields 4-17 of a one-line record from their text (after the third comma): as csv
    reads them, and as Image values. None when csv would read past the line (a quoted
    field goes on), or the fields are malformed: csv reads that record and reports it."""
    if not text:
        return None  # (after a comma: one empty field; csv alone would read none)
    reader = csv.reader((text, ""), dialect="excel")
    try:
        fields = next(reader)
        if reader.line_num > 1:
            return None
        return tuple(fields), row_tail(fields)
    except (csv.Error, ValueError):
        return None


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
