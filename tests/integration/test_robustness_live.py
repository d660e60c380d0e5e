"""Failures that must stay local, and the run lock, with the real CLI on the real test bed.

A target whose Keystone refuses us fails only its own regions; two runs of one
configuration exclude each other whatever their environment.
"""

from __future__ import annotations

import hashlib

try:  # the helpers of the CLI tests (same directory; package or sys.path import)
    from .test_cli_live import KB, by_name, data, glancesync_command, gs  # noqa: F401
except ImportError:
    from test_cli_live import KB, by_name, data, glancesync_command, gs  # noqa: F401


def test_target_with_a_wrong_password_fails_only_its_own_regions(testbed, gs):
    testbed.create_image("Master", "img", data("img", 4 * KB), visibility="public")
    sync = gs("master:", "other:", "--config", "other.password=not-the-password")
    out = sync.stdout + sync.stderr
    assert sync.returncode == 1, out
    # the other target's regions were synced...
    for region in ("RegionA", "RegionB"):
        assert by_name(testbed, region)["img"]["status"] == "active"
    # ...the failed one is untouched and its cause is one line naming the target
    assert by_name(testbed, "RegionC", "target") == {}
    logged, summary = out.split("======Summary")
    lines = [line for line in logged.splitlines() if "rejected the credentials" in line]
    assert len(lines) == 1, out
    assert "other" in lines[0] and "skipped" in lines[0]
    assert "WARNING:target other: FAILED (other: Error retrieving the region list" in summary
    assert "not-the-password" not in out  # no secret in any message
    # the same target named region by region
    single = gs("other:RegionC", "RegionA", "--config", "other.password=not-the-password")
    assert single.returncode == 1, single.stdout + single.stderr
    assert "rejected the credentials" in single.stdout + single.stderr


def test_target_whose_keystone_is_unreachable_fails_only_its_own_regions(testbed, gs):
    testbed.create_image("Master", "img", data("img", 4 * KB), visibility="public")
    sync = gs("RegionA", "other:", "--config", "other.keystone_url=http://127.0.0.1:9/v3")
    out = sync.stdout + sync.stderr
    assert sync.returncode == 1, out
    assert by_name(testbed, "RegionA")["img"]["status"] == "active"
    assert "other: Error retrieving the region list" in out
    # --show-status and --show-regions go on with the reachable targets too
    status = gs("--show-status", "master:", "other:", "--config",
                "other.keystone_url=http://127.0.0.1:9/v3")
    assert status.returncode == 1
    assert "ok,RegionA,img" in status.stdout
    regions = gs("--show-regions", "--config", "other.keystone_url=http://127.0.0.1:9/v3")
    assert regions.returncode == 1
    assert "RegionA" in regions.stdout and "RegionC" not in regions.stdout


def test_an_unknown_master_region_exits_2(testbed, gs):
    testbed.create_image("Master", "img", data("img", 4 * KB), visibility="public")
    sync = gs("RegionA", "--config", "main.master_region=Mastre")
    out = sync.stdout + sync.stderr
    assert sync.returncode == 2, out
    assert "unknown master_region 'Mastre'" in out and "Master" in out
    assert by_name(testbed, "RegionA") == {}


def test_two_copies_of_other_content_are_never_reported_ok(testbed, gs):
    """A replace whose delete failed left two active public copies of ``img``: the image
    is error_checksum (exit 3) until a rule covers the other copy; then the next run
    deletes it and all is ok."""
    master = testbed.create_image("Master", "img", data("new", 4 * KB), visibility="public")
    testbed.create_image("RegionA", "img", data("old", 4 * KB), visibility="public")
    copy = testbed.create_image("RegionA", "img", data("new", 4 * KB), visibility="public")
    status = gs("--show-status", "RegionA")
    assert status.returncode == 3, status.stdout + status.stderr
    assert status.stdout.strip() == "error_checksum,RegionA,img"
    sync = gs("RegionA")
    assert sync.returncode == 3
    assert "another copy named img" in sync.stdout + sync.stderr
    assert len(testbed.list_images("RegionA")) == 2  # nothing decided for the operator
    old_md5 = hashlib.md5(data("old", 4 * KB)).hexdigest()
    sync = gs("RegionA", master={"replace": old_md5})
    assert sync.returncode == 0, sync.stdout + sync.stderr
    images = testbed.list_images("RegionA")
    assert [(i["id"], i["checksum"]) for i in images] == [(copy["id"], master["checksum"])]
    assert gs("--show-status", "RegionA").stdout.strip() == "ok,RegionA,img"
