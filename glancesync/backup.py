"""Backups: ``backup_glance_<timestamp>/backup_<region fullname>.csv``.

A backup directory is also a valid offline directory (glancesync.facade.offline), so the
reading and atomic-writing helpers live here and the offline facade reuses them.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import secrets
import stat
from collections.abc import Iterable
from datetime import datetime

from glancesync.exceptions import BadInput, FacadeError
from glancesync.image import Image

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
    text = _read_text(path)
    next_start = 1
    reader = csv.reader(io.StringIO(text, newline=""), dialect="excel")
    from_csv_row = Image.from_csv_row
    # Reading makes several objects per row and no reference cycle, but each of them
    # counts toward the cyclic collector's thresholds: with many big files in memory its
    # full passes over the ever larger heap took half the reading time. It is paused for
    # the reading (and resumed as it was, whatever happens).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for row in reader:
            # line_num counts the physical lines read so far; a quoted field may span
            # lines, so a record starts right after the previous one ends.
            line, next_start = next_start, reader.line_num + 1
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
    except csv.Error as exc:
        raise BadInput(f"{path}, line {next_start}: not valid CSV: {exc}") from exc
    finally:
        if collecting:
            gc.enable()
    return images, rows


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
