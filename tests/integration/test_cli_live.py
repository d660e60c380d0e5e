"""The real CLI against real Keystone + Glance servers (the test bed of conftest.py).

Every test writes a configuration that points at the test bed, runs `glancesync` as a
user would (a subprocess, no OS_* variables leaking in), then looks at the regions with
python-glanceclient: images, bytes, properties, visibility.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KB = 1024


def glancesync_command() -> list[str]:
    script = Path(sys.executable).with_name("glancesync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "glancesync.cli"]


@pytest.fixture
def gs(testbed, tmp_path):
    """Run glancesync with a config for the test bed: gs(*args, conf_extra={...})."""

    def write_config(master: dict[str, str], other: dict[str, str], main: dict[str, str]) -> Path:
        env, tenv = testbed.env, testbed.target_env
        password = base64.b64encode(env["OS_PASSWORD"].encode()).decode()
        lines = ["[main]", "master_region = Master"]
        lines += [f"{k} = {v}" for k, v in main.items()]
        lines += [
            "[master]",
            f"credential = {env['OS_USERNAME']},{password},{env['OS_AUTH_URL']},"
            f"{env['OS_PROJECT_NAME']}",
        ]
        lines += [f"{k} = {v}" for k, v in master.items()]
        lines += [
            "[other]",
            f"user = {tenv['OS_USERNAME']}",
            f"password = {tenv['OS_PASSWORD']}",
            f"keystone_url = {tenv['OS_AUTH_URL']}",
            f"tenant = {tenv['OS_PROJECT_NAME']}",
        ]
        lines += [f"{k} = {v}" for k, v in other.items()]
        path = tmp_path / "glancesync.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def run(*args: str, master=None, other=None, main=None, offline: Path | None = None):
        config = write_config(master or {}, other or {}, main or {})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
        env["GLANCESYNC_LOCK_FILE"] = str(tmp_path / "lock")
        cmd = glancesync_command() + ["--config-file", str(config)]
        if offline:
            cmd += ["--offline", str(offline)]
        proc = subprocess.run(
            cmd + list(args), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc

    return run


def data(seed: str, size: int) -> bytes:
    block = hashlib.sha512(seed.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def by_name(testbed, region: str, cloud: str = "master") -> dict[str, dict]:
    images: dict[str, dict] = {}
    for image in testbed.list_images(region, cloud):
        assert image["name"] not in images, f"duplicate {image['name']} in {region}"
        images[image["name"]] = image
    return images


def status_lines(proc) -> list[str]:
    return sorted(proc.stdout.splitlines())


def listing(testbed) -> dict[str, list[tuple]]:
    """Everything a sync could change, per region of both clouds."""
    result = {}
    for cloud, regions in (("master", testbed.regions), ("target", testbed.target_regions)):
        for region in regions:
            rows = []
            for image in testbed.list_images(region, cloud):
                image.pop("updated_at", None)
                rows.append(tuple(sorted((k, json.dumps(v)) for k, v in image.items())))
            result[region] = sorted(rows)
    return result


# ---------------------------------------------------------------------------------------


def test_upload_to_all_regions_with_identical_bytes(testbed, gs):
    content = data("ubuntu", 300 * KB)
    master = testbed.create_image("Master", "ubuntu", content, visibility="public", nid="101")
    testbed.create_image("Master", "private_tools", b"tools", visibility="private")

    before = gs("--show-status", "master:", "other:")
    assert before.returncode == 0, before.stderr
    assert status_lines(before) == [
        "pending_upload,RegionA,ubuntu",
        "pending_upload,RegionB,ubuntu",
        "pending_upload,other:RegionC,ubuntu",
    ]

    sync = gs("master:", "other:")
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "RegionA: Uploading image ubuntu" in (sync.stdout + sync.stderr)
    for region, cloud in (("RegionA", "master"), ("RegionB", "master"), ("RegionC", "target")):
        copy = by_name(testbed, region, cloud)["ubuntu"]
        assert set(by_name(testbed, region, cloud)) == {"ubuntu"}  # private one not synced
        assert testbed.download(region, copy["id"], cloud) == content
        assert copy["checksum"] == master["checksum"]
        assert copy["os_hash_value"] == master["os_hash_value"]
        assert copy["visibility"] == "public"
        assert copy["nid"] == "101"

    after = gs("--show-status", "master:", "other:")
    assert status_lines(after) == [
        "ok,RegionA,ubuntu",
        "ok,RegionB,ubuntu",
        "ok,other:RegionC,ubuntu",
    ]
    again = gs("master:", "other:")
    assert again.returncode == 0
    assert "Uploading" not in (again.stdout + again.stderr)
    assert (again.stdout + again.stderr).count("Region is synchronized.") == 3


def test_dry_run_changes_no_glance(testbed, gs):
    testbed.create_image("Master", "a", data("a", 10 * KB), visibility="public", nid="1")
    testbed.create_image("Master", "b_obsolete", data("b", 5 * KB), visibility="private")
    testbed.create_image("RegionA", "a", data("old-a", 10 * KB), visibility="public", nid="0")
    testbed.create_image("RegionA", "b", data("b", 5 * KB), visibility="public")
    before = listing(testbed)
    dry = gs("--dry-run", "master:", "other:", master={"rename": "any"})
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "RegionA: Renaming and replacing image a" in (dry.stdout + dry.stderr)
    assert "RegionA: Obsolete image pending to update b_obsolete" in (dry.stdout + dry.stderr)
    assert "RegionB: Pending: a" in (dry.stdout + dry.stderr)
    parallel = gs("--dry-run", "--parallel", "master:", "other:", master={"rename": "any"})
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    assert listing(testbed) == before


def test_metadata_update_limited_to_metadata_set_and_visibility(testbed, gs):
    content = data("img", 20 * KB)
    testbed.create_image(
        "Master", "img", content, visibility="public", nid="2", type="base", extra="master"
    )
    copy = testbed.create_image(
        "RegionA", "img", content, visibility="private", nid="1", type="base", extra="local",
        gone="x",
    )
    conf = {"metadata_set": "nid, type, gone"}
    status = gs("--show-status", "RegionA", master=conf)
    assert status.stdout == "pending_metadata,RegionA,img\n"
    sync = gs("RegionA", master=conf)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "RegionA: Updating the metadata of image img" in (sync.stdout + sync.stderr)
    image = by_name(testbed, "RegionA")["img"]
    assert image["id"] == copy["id"]  # updated in place, not re-uploaded
    assert image["nid"] == "2"
    assert image["extra"] == "local"  # outside metadata_set: local to the region
    assert "gone" not in image  # in metadata_set, absent on master: removed
    assert image["visibility"] == "public"
    assert gs("--show-status", "RegionA", master=conf).stdout == "ok,RegionA,img\n"


def test_replace_and_rename_on_checksum_conflicts(testbed, gs):
    testbed.create_image("Master", "rep", data("rep-new", 8 * KB), visibility="public")
    testbed.create_image("Master", "ren", data("ren-new", 8 * KB), visibility="public")
    testbed.create_image("Master", "keep", data("keep-new", 8 * KB), visibility="public")
    old_rep = testbed.create_image("RegionA", "rep", data("rep-old", 8 * KB), visibility="public")
    old_ren = testbed.create_image(
        "RegionA", "ren", data("ren-old", 8 * KB), visibility="public", note="old"
    )
    old_keep = testbed.create_image("RegionA", "keep", data("keep-old", 8 * KB))
    conf = {"replace": old_rep["checksum"], "rename": old_ren["os_hash_value"]}
    assert status_lines(gs("--show-status", "RegionA", master=conf)) == [
        "error_checksum,RegionA,keep",
        "pending_rename,RegionA,ren",
        "pending_replace,RegionA,rep",
    ]
    sync = gs("RegionA", master=conf)
    assert sync.returncode == 3, sync.stdout + sync.stderr  # "keep" needs the operator
    assert "Image keep has a different checksum" in (sync.stdout + sync.stderr)
    images = by_name(testbed, "RegionA")
    assert set(images) == {"rep", "ren", "ren.old", "keep"}
    assert testbed.download("RegionA", images["rep"]["id"]) == data("rep-new", 8 * KB)
    assert images["ren.old"]["id"] == old_ren["id"]
    assert images["ren.old"]["visibility"] == "private"
    assert images["ren.old"]["note"] == "old"
    assert testbed.download("RegionA", images["ren.old"]["id"]) == data("ren-old", 8 * KB)
    assert testbed.download("RegionA", images["ren"]["id"]) == data("ren-new", 8 * KB)
    assert images["keep"]["id"] == old_keep["id"]


def test_obsolete_rename_follows_master(testbed, gs):
    content = data("centos", 6 * KB)
    testbed.create_image(
        "Master", "centos_obsolete", content, visibility="private", sdc_aware="false"
    )
    copy = testbed.create_image("RegionB", "centos", content, visibility="public", sdc_aware="true")
    sync = gs("RegionB", master={"obsolete_syncprops": "sdc_aware"})
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "RegionB: updating obsolete image centos_obsolete" in (sync.stdout + sync.stderr)
    image = by_name(testbed, "RegionB")["centos_obsolete"]
    assert image["id"] == copy["id"]
    assert image["visibility"] == "private"
    assert image["sdc_aware"] == "false"


def test_ami_ids_are_rewritten_to_each_regions_uuids(testbed, gs):
    kernel = testbed.create_image(
        "Master", "kernel", data("k", 30 * KB), visibility="public",
        disk_format="aki", container_format="aki",
    )
    ramdisk = testbed.create_image(
        "Master", "ramdisk", data("r", 20 * KB), visibility="public",
        disk_format="ari", container_format="ari",
    )
    # The AMI is smaller than its kernel and ramdisk: they must still go first.
    testbed.create_image(
        "Master", "ami", data("a", 10 * KB), visibility="public",
        disk_format="ami", container_format="ami",
        kernel_id=kernel["id"], ramdisk_id=ramdisk["id"],
    )
    sync = gs("master:", "other:")
    assert sync.returncode == 0, sync.stdout + sync.stderr
    for region, cloud in (("RegionA", "master"), ("RegionB", "master"), ("RegionC", "target")):
        images = by_name(testbed, region, cloud)
        assert images["ami"]["kernel_id"] == images["kernel"]["id"] != kernel["id"]
        assert images["ami"]["ramdisk_id"] == images["ramdisk"]["id"] != ramdisk["id"]
        assert images["kernel"]["disk_format"] == "aki"
    assert gs("--show-status", "master:", "other:").stdout.count("ok,") == 9


def test_other_target_uses_its_own_credentials_and_owner(testbed, gs):
    testbed.create_image("Master", "img", data("img", 4 * KB), visibility="public")
    sync = gs("other:RegionC")
    assert sync.returncode == 0, sync.stdout + sync.stderr
    copy = by_name(testbed, "RegionC", "target")["img"]
    project = testbed.keystone_session("target").get_project_id()
    assert copy["owner"] == project
    assert by_name(testbed, "RegionA") == {}  # only the region asked for


def test_backup_then_offline_replay_gives_the_same_status(testbed, gs, tmp_path):
    testbed.create_image("Master", "a", data("a", 4 * KB), visibility="public", nid="1")
    testbed.create_image("Master", "b", data("b", 4 * KB), visibility="public")
    testbed.create_image("RegionA", "a", data("a", 4 * KB), visibility="public", nid="0")
    testbed.create_image("RegionB", "b", data("b-old", 4 * KB), visibility="public")
    args = ["RegionA", "RegionB", "other:RegionC"]
    live = gs("--show-status", *args)
    backup = gs("--make-backups", *args)
    assert backup.returncode == 0, backup.stdout + backup.stderr
    [directory] = list(tmp_path.glob("backup_glance_*"))
    assert sorted(p.name for p in directory.iterdir()) == [
        "backup_Master.csv", "backup_RegionA.csv", "backup_RegionB.csv",
        "backup_other:RegionC.csv", "tenants.csv",
    ]
    replay = gs("--show-status", *args, offline=directory)
    assert replay.stdout == live.stdout
    assert replay.returncode == live.returncode == 3  # b differs in RegionB: error_checksum


def test_parallel_over_three_regions(testbed, gs, tmp_path):
    content = data("p", 50 * KB)
    testbed.create_image("Master", "p", content, visibility="public")
    proc = gs("--parallel", "RegionA", "RegionB", "other:RegionC", main={"max_children": "3"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for region in ("RegionA", "RegionB", "other:RegionC"):
        assert f"Region {region} has finished" in (proc.stdout + proc.stderr)
    [logdir] = list(tmp_path.glob("sync_*"))
    assert "Image uploaded." in (logdir / "other:RegionC.txt").read_text()
    for region, cloud in (("RegionA", "master"), ("RegionB", "master"), ("RegionC", "target")):
        copy = by_name(testbed, region, cloud)["p"]
        assert testbed.download(region, copy["id"], cloud) == content


def test_images_dir_is_read_when_the_file_is_there_and_never_blocks(testbed, gs, tmp_path):
    content = data("disk", 40 * KB)
    master = testbed.create_image("Master", "disk", content, visibility="public")
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    path = images_dir / master["id"]

    # A stale file of the same size: read, found wrong at the end (the upload is aborted
    # before Glance activates it), then the bytes come from the master API instead.
    path.write_bytes(data("corrupt", 40 * KB))
    stale = gs("RegionA", main={"images_dir": str(images_dir)})
    assert stale.returncode == 0, stale.stdout + stale.stderr
    assert f"read from file {path} is not the master's content" in (stale.stdout + stale.stderr)
    assert "reading it from master region Master instead" in (stale.stdout + stale.stderr)
    assert testbed.download("RegionA", by_name(testbed, "RegionA")["disk"]["id"]) == content

    # A truncated file is not used at all. (RegionB could copy from the master by itself,
    # which reads no file: it is streamed to here.)
    path.write_bytes(content[:1000])
    short = gs("RegionB", main={"images_dir": str(images_dir)}, master={"server_side_copy": "no"})
    assert short.returncode == 0, short.stdout + short.stderr
    expected = f"File {path} has 1000 bytes, master image disk has {len(content)}"
    assert expected in short.stdout + short.stderr
    assert testbed.download("RegionB", by_name(testbed, "RegionB")["disk"]["id"]) == content

    # The right file is what gets read.
    path.write_bytes(content)
    good = gs("other:RegionC", main={"images_dir": str(images_dir)})
    assert good.returncode == 0, good.stdout + good.stderr
    copy = by_name(testbed, "RegionC", "target")["disk"]
    assert testbed.download("RegionC", copy["id"], cloud="target") == content


def test_master_region_is_never_modified(testbed, gs):
    testbed.create_image("Master", "a", data("a", 4 * KB), visibility="public", nid="1")
    testbed.create_image("Master", "a_obsolete", data("x", 4 * KB), visibility="public")
    before = listing(testbed)["Master"]
    proc = gs("master:", "other:", master={"rename": "any"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert listing(testbed)["Master"] == before


def test_environment_only_like_an_openrc_user(testbed, tmp_path):
    """No configuration file at all: the OS_* variables of an openrc are enough."""
    content = data("env", 12 * KB)
    testbed.create_image("Master", "env_image", content, visibility="public")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    env.update(testbed.env, GLANCESYNC_LOCK_FILE=str(tmp_path / "lock"))
    assert not Path("/etc/glancesync.conf").exists(), "this machine has a global config"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(glancesync_command() + list(args), cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    assert run("--show-regions").stdout == "RegionA RegionB\n"
    assert run("--show-status").stdout == (
        "pending_upload,RegionA,env_image\npending_upload,RegionB,env_image\n"
    )
    sync = run()
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "======Master is Master" in (sync.stdout + sync.stderr)
    for region in ("RegionA", "RegionB"):
        copy = by_name(testbed, region)["env_image"]
        assert testbed.download(region, copy["id"]) == content
