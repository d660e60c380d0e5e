"""Fan-out and server-side copy against the real test bed.

* a sync of three regions (two in the master's Keystone, one in another cloud) reads each
  master image once: the master Glance's own write counter says so, in the default mode
  and with --parallel;
* a region whose upload breaks half-way (its Glance worker is killed) fails alone;
* RegionB's Glance offers glance-download: synchronised alone, it copies images from the
  master itself (synchronised with others, it shares their read); RegionA is streamed to;
  with server_side_copy = no RegionB is streamed to as well.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    from . import testbed as tb
except ImportError:
    import testbed as tb

MiB = 1024 * 1024
TARGETS = [("RegionA", "master"), ("RegionB", "master"), ("RegionC", "target")]


def data(seed: str, size: int) -> bytes:
    block = hashlib.sha512(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def command(testbed, tmp_path: Path, *args: str, master: dict[str, str] | None = None) -> list:
    env, tenv = testbed.env, testbed.target_env
    password = base64.b64encode(env["OS_PASSWORD"].encode()).decode()
    lines = ["[main]", "master_region = Master", "[master]",
             f"credential = {env['OS_USERNAME']},{password},{env['OS_AUTH_URL']},"
             f"{env['OS_PROJECT_NAME']}"]
    lines += [f"{k} = {v}" for k, v in (master or {}).items()]
    lines += ["[other]", f"user = {tenv['OS_USERNAME']}", f"password = {tenv['OS_PASSWORD']}",
              f"keystone_url = {tenv['OS_AUTH_URL']}", f"tenant = {tenv['OS_PROJECT_NAME']}"]
    config = tmp_path / "glancesync.conf"
    config.write_text("\n".join(lines) + "\n")
    script = Path(sys.executable).with_name("glancesync")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "glancesync.cli"]
    return exe + ["--config-file", str(config), *args]


def environ(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    env["GLANCESYNC_LOCK_FILE"] = str(tmp_path / "lock")
    return env


def run(testbed, tmp_path: Path, *args: str, master: dict[str, str] | None = None):
    proc = subprocess.run(command(testbed, tmp_path, *args, master=master), cwd=tmp_path,
                          env=environ(tmp_path), capture_output=True, text=True, timeout=600)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc


def master_images(testbed, sizes: dict[str, int]) -> dict[str, dict]:
    return {
        name: testbed.create_image("Master", name, data(name, size), visibility="public")
        for name, size in sizes.items()
    }


def copies(testbed, region: str, cloud: str) -> dict[str, dict]:
    return {i["name"]: i for i in testbed.list_images(region, cloud)}


def assert_synchronised(testbed, masters: dict[str, dict], regions=TARGETS) -> None:
    for region, cloud in regions:
        found = copies(testbed, region, cloud)
        assert set(found) == set(masters), (region, sorted(found))
        for name, master in masters.items():
            assert found[name]["status"] == "active"
            assert found[name]["os_hash_value"] == master["os_hash_value"], (region, name)


@pytest.mark.parametrize("mode", [[], ["--parallel"]], ids=["default", "parallel"])
def test_a_sync_of_three_regions_reads_each_master_image_once(testbed, tmp_path, mode):
    masters = master_images(testbed, {"big": 8 * MiB, "medium": 4 * MiB, "small": 2 * MiB})
    selected = sum(m["size"] for m in masters.values())
    before = testbed.glance_written_bytes("Master")
    # RegionB could copy by itself, but the shared read serves it at no extra cost.
    proc = run(testbed, tmp_path, *mode, "RegionA", "RegionB", "other:RegionC")
    egress = testbed.glance_written_bytes("Master") - before
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "copied by the region from the master region" not in proc.stdout + proc.stderr
    assert_synchronised(testbed, masters)
    # Read once: the master wrote the selected bytes once (plus its small JSON answers),
    # not three times.
    assert selected <= egress < 1.2 * selected, egress / selected


def test_a_region_whose_upload_breaks_does_not_disturb_the_others(testbed, tmp_path):
    masters = master_images(testbed, {"big": 64 * MiB, "small": 1 * MiB})
    proc = subprocess.Popen(
        command(testbed, tmp_path, "RegionA", "RegionB", "other:RegionC",
                master={"server_side_copy": "no", "retries": "0"}),
        cwd=tmp_path, env=environ(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        output = ""
        for line in proc.stdout:
            output += line
            if "RegionA: Uploading image big" in line:
                break
        # Once the shared read of the big image is under way, kill RegionA's Glance
        # worker: its upload breaks half-way (uWSGI's master starts a new worker).
        _kill_worker_mid_read(testbed, "RegionA", 16 * MiB)
        rest, _ = proc.communicate(timeout=600)
        output += rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, output
    assert "RegionA: Region synchronisation failed for: big" in output
    # The others got everything, from the same read.
    assert_synchronised(testbed, masters, [("RegionB", "master"), ("RegionC", "target")])
    _wait_answering(testbed, "RegionA")
    region_a = copies(testbed, "RegionA", "master")
    assert region_a["small"]["status"] == "active"
    assert "big" not in region_a


def _kill_worker_mid_read(testbed, region: str, after: int, timeout: float = 60) -> None:
    start = testbed.glance_written_bytes("Master")
    deadline = time.monotonic() + timeout
    while testbed.glance_written_bytes("Master") - start < after:
        assert time.monotonic() < deadline, "the master was not read"
        time.sleep(0.02)
    leader = _glance_pid(testbed, region)
    workers = [pid for pid in tb._pgroup_members(leader) if pid != leader]  # not uWSGI's master
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)


def _glance_pid(testbed, region: str) -> int:
    state = json.loads((Path(testbed.base) / "state.json").read_text())
    return state["pids"][f"glance-{region}"]


def _wait_answering(testbed, region: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            testbed.list_images(region)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_the_region_with_glance_download_copies_by_itself(testbed, tmp_path):
    masters = master_images(testbed, {"debian": 5 * MiB, "cirros": 1 * MiB})
    selected = sum(m["size"] for m in masters.values())
    before = testbed.glance_written_bytes("Master")
    proc = run(testbed, tmp_path, "RegionB")
    egress = testbed.glance_written_bytes("Master") - before
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "RegionB: the region can copy images from Master by itself" in output
    assert "RegionB: debian copied by the region from the master region" in output
    assert_synchronised(testbed, masters, [("RegionB", "master")])
    # RegionB's Glance read the master once; nothing went through glancesync (which
    # would show as a download by glancesync plus an upload into RegionB).
    assert selected <= egress < 1.2 * selected, egress / selected
    assert not [n for n in copies(testbed, "RegionB", "master") if ".glancesync-tmp-" in n]
    # RegionA cannot: it is streamed to.
    other = run(testbed, tmp_path, "RegionA")
    assert other.returncode == 0, other.stdout + other.stderr
    assert "copied by the region from the master region" not in other.stdout + other.stderr
    assert_synchronised(testbed, masters, [("RegionA", "master")])


def test_server_side_copy_turned_off_streams_to_that_region_too(testbed, tmp_path):
    masters = master_images(testbed, {"debian": 3 * MiB})
    proc = run(testbed, tmp_path, "RegionB", master={"server_side_copy": "no"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "copied by the region" not in output
    assert "RegionB: Image uploaded." in output
    assert_synchronised(testbed, masters, [("RegionB", "master")])
