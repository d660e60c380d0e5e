"""Where bytes come from and how they are checked before a copy can become active."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from glancesync.exceptions import SourceMismatch
from glancesync.image import Image
from glancesync.transfer import ImageSource, source_for

DATA = b"x" * 3_000_000


def master(data: bytes = DATA, hashes: bool = True) -> Image:
    return Image(
        id="m1",
        name="debian",
        size=len(data),
        checksum=hashlib.md5(data).hexdigest() if hashes else None,
        os_hash_algo="sha512" if hashes else None,
        os_hash_value=hashlib.sha512(data).hexdigest() if hashes else None,
    )


def chunked(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_the_last_chunk_is_held_back_until_the_bytes_are_verified():
    source = ImageSource(master(), "test", lambda: chunked(DATA), progress=False)
    assert b"".join(source.chunks()) == DATA
    wrong = DATA[:-1] + b"y"
    source = ImageSource(master(), "test", lambda: chunked(wrong), progress=False)
    sent = []
    with pytest.raises(SourceMismatch, match="not the master's content: sha512 of the bytes"):
        for chunk in source.chunks():
            sent.append(chunk)
    # everything but the end was streamed: the upload is aborted before Glance can finish
    assert b"".join(sent) == wrong[: len(wrong) - (len(wrong) % (1 << 20) or 1 << 20)]


def test_a_short_stream_is_refused():
    source = ImageSource(master(), "test", lambda: chunked(DATA[:-10]), progress=False)
    with pytest.raises(SourceMismatch, match="read 2999990 bytes, master size is 3000000"):
        list(source.chunks())


class Api:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    def download(self, region: str, image_id: str) -> Iterator[bytes]:
        self.reads += 1
        return chunked(self.data)


def test_a_file_of_the_wrong_size_in_images_dir_is_not_used(tmp_path: Path, caplog):
    (tmp_path / "m1").write_bytes(DATA[:100])  # stale, truncated
    api = Api(DATA)
    source = source_for(master(), str(tmp_path), api, "Master", progress=False)  # type: ignore[arg-type]
    assert source.description == "master region Master"
    assert b"".join(source.chunks()) == DATA and api.reads == 1
    assert "has 100 bytes, master image debian has 3000000" in caplog.text


def test_a_file_of_the_right_size_but_other_bytes_falls_back_to_the_api(tmp_path: Path):
    (tmp_path / "m1").write_bytes(b"z" * len(DATA))
    api = Api(DATA)
    source = source_for(master(), str(tmp_path), api, "Master", progress=False)  # type: ignore[arg-type]
    assert source.description == f"file {tmp_path / 'm1'}"
    with pytest.raises(SourceMismatch):
        list(source.chunks())
    assert source.fallback() and source.description == "master region Master"
    assert b"".join(source.chunks()) == DATA
    assert not source.fallback()


def test_a_copy_of_a_master_without_hashes_is_checked_against_the_bytes_sent():
    source = ImageSource(master(hashes=False), "test", lambda: chunked(DATA), progress=False)
    list(source.chunks())
    good = Image(
        id="c", name="debian", size=len(DATA), checksum=hashlib.md5(DATA).hexdigest(),
        os_hash_algo="sha512", os_hash_value=hashlib.sha512(DATA).hexdigest(),
    )  # fmt: skip
    assert source.check_copy(good) is None
    bad = good.copy(checksum="0" * 32, os_hash_value="0" * 128)
    assert "the bytes sent have md5" in str(source.check_copy(bad))
    assert "not active" in str(source.check_copy(good.copy(status="queued")))


def test_md5_is_only_computed_when_the_master_has_no_multihash():
    # The master's sha512 is checked on the way: an md5 of the same bytes adds nothing.
    source = ImageSource(master(), "test", lambda: chunked(DATA), progress=False)
    assert b"".join(source.chunks()) == DATA
    assert source.md5 is None
    hashless = ImageSource(master(hashes=False), "test", lambda: chunked(DATA), progress=False)
    assert b"".join(hashless.chunks()) == DATA
    assert hashless.md5 == hashlib.md5(DATA).hexdigest()
    assert hashless.multihash == hashlib.sha512(DATA).hexdigest()
