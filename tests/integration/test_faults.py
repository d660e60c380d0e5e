"""Faults injected between glancesync and a real Glance, and what the user is left with.

Each case (faultcases.CASES) runs the real CLI over Master -> RegionA, RegionB (same cloud)
and RegionC (another cloud) while a fault proxy in front of RegionA answers 5xx, stalls,
flips a byte, drops a connection or loses an answer, or while the CLI gets SIGTERM/SIGINT
or RegionA's glance-api is killed. Each asserts:

* the exit code the README documents for it, and no traceback;
* the master region unchanged;
* no wrong image ever active in RegionA: neither seen by polling it during the run nor
  found afterwards in its Glance's database (rows of deleted images included);
* no unmarked half-made image anywhere; marked temporary copies only after a hard kill;
* per region and image: synced, or exactly as it was (the others synced: RegionB and
  RegionC fully, RegionA all but the faulted image, unless the run was stopped);
* a rerun with no fault exits 0, cleans marked leftovers (saying so), and then
  ``--show-status`` says ``ok`` for every image of every region.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

try:
    from .faultcases import (
        CASES,
        MASTER_IMAGES,
        OLD_ALPHA,
        PROXIED,
        TEMP_INFIX,
        Case,
        FaultBed,
        Outcome,
        Row,
    )
except ImportError:
    from faultcases import (
        CASES,
        MASTER_IMAGES,
        OLD_ALPHA,
        PROXIED,
        TEMP_INFIX,
        Case,
        FaultBed,
        Outcome,
        Row,
    )

MD5 = {name: hashlib.md5(data).hexdigest() for name, data in MASTER_IMAGES.items()}
OLD_MD5 = hashlib.md5(OLD_ALPHA).hexdigest()


@pytest.fixture(scope="module")
def faultbed(testbed, tmp_path_factory) -> Iterator[FaultBed]:
    """One fault proxy and one set of master images for the whole module."""
    testbed.delete_all_images()
    bed = FaultBed(testbed, tmp_path_factory.mktemp("faults"))
    try:
        bed.ensure_master()
        yield bed
    finally:
        bed.close()


@pytest.fixture(autouse=True)
def clean_glance() -> None:
    """Replaces conftest's: the master images stay; each case cleans the other regions."""


def synced(rows: list[Row], name: str) -> bool:
    mine = [r for r in rows if r.name == name]
    return len(mine) == 1 and mine[0].status == "active" and mine[0].checksum == MD5[name] \
        and not mine[0].hidden and not mine[0].marked and mine[0].visibility == "public"


def check_left_after_fault(o: Outcome) -> None:
    case = o.case
    for region, rows in o.after.items():
        for row in rows:
            # a half-made image is always marked (and is only left by a hard kill)
            if row.status != "active" or TEMP_INFIX in row.name:
                assert row.marked, f"unmarked half-made image in {region}: {row}"
            if row.marked:
                assert case.leftover, f"{region}: temporary copy left behind: {row}"
        not_synced = []
        for name in MASTER_IMAGES:
            if synced(rows, name):
                continue
            as_before = [r for r in o.before[region] if r.name == name]
            assert [r for r in rows if r.name == name] == as_before, (
                f"{region}: {name} neither synced nor as it was: {rows}")
            not_synced.append(name)
        for row in rows:
            if row.name in MASTER_IMAGES or row.marked:
                continue
            # the only other image a sync may make: the renamed old copy, next to the new
            assert case.setup == "rename" and row.name == "alpha.old" and synced(rows, "alpha") \
                and row.checksum == OLD_MD5 and row.visibility == "private", (
                    f"{region}: unexpected image {row}")
        if case.interrupted:
            continue  # the run stopped there: the regions after it were not reached
        if region != PROXIED:
            assert not_synced == [], f"{region} not synced: {not_synced}"
        elif not case.region_fails:
            assert len(not_synced) <= 1, f"{region}: only the faulted image may fail"


def check_rerun(o: Outcome) -> None:
    rerun = o.rerun.stdout + o.rerun.stderr
    assert o.rerun.returncode == 0, rerun
    assert "Traceback" not in rerun
    left = [r for rows in o.after.values() for r in rows if r.marked]
    if o.case.leftover:  # Glance was down when the copy in flight was to be deleted
        assert left, "the case meant to leave a marked leftover left none"
    if left:
        assert "Deleting leftover image" in rerun, rerun
    for region, rows in o.final.items():
        for name in MASTER_IMAGES:
            assert synced(rows, name), f"{region}: {name} not synced by the rerun: {rows}"
        extra = [r for r in rows if r.name not in MASTER_IMAGES]
        if o.case.setup == "rename" and region == PROXIED:
            assert [(r.name, r.checksum) for r in extra] == [("alpha.old", OLD_MD5)]
        else:
            assert extra == [], f"{region}: {extra}"
    lines = o.status.stdout.splitlines()
    assert o.status.returncode == 0, o.status.stdout + o.status.stderr
    assert len(lines) == len(MASTER_IMAGES) * len(o.final), lines
    assert all(line.startswith("ok,") for line in lines), lines


@pytest.mark.parametrize("case", [c for c in CASES if c.suite], ids=lambda c: c.name)
def test_fault(faultbed: FaultBed, case: Case) -> None:
    o = faultbed.run_case(case)
    text = o.run.stdout + o.run.stderr
    assert "Traceback" not in text, text
    assert all(f.applied for f in o.faults), f"fault not injected: {o.faults}"
    assert o.run.returncode == case.exit_code, text
    if case.log:
        assert case.log in text, text
    assert o.master_after == o.master_before, "the master region was modified"
    assert o.polls > 0, "RegionA was never polled during the run"
    assert o.wrong_active == [], f"wrong image active in {PROXIED}: {o.wrong_active}"
    assert o.wrong_in_db == [], f"wrong image activated in {PROXIED}: {o.wrong_in_db}"
    check_left_after_fault(o)
    check_rerun(o)
