"""The command line as an operator uses it, on an offline federation (CSV regions).

Most tests call ``glancesync.cli.main`` in-process (fast); exit codes, tracebacks,
``--parallel`` (fork) and ``scripts/sync.py`` are checked through real processes.

The federation: master region Valladolid (target master), destination regions Burgos
(empty), Caceres (cirros ok, base_debian_12 with other content: error_checksum) and
Testing (ignored), plus target "other" with Madrid (empty) and Lisboa (ignored).
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import glancesync
from glancesync.backup import write_csv_atomic
from glancesync.cli import main
from glancesync.image import Image

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = base64.b64encode(b"s3cret").decode()

CONFIG = f"""\
[main]
master_region = Valladolid
preferable_order = Caceres

[master]
credential = syncadmin,{PASSWORD},https://keystone.example.org:5000/v3,tenant1
ignore_regions = Testing

[other]
credential = syncadmin,{PASSWORD},https://keystone.other.example.org:5000/v3,tenant2
ignore_regions = Lisboa
"""


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def image(region: str, name: str, content: str, size: int, **kw) -> Image:
    return Image(
        id=kw.pop("id", f"{region}-{name}"),
        name=name,
        region=region,
        owner=kw.pop("owner", "tenant1id"),
        checksum=md5(content),
        size=size,
        **kw,
    )


REGIONS: dict[str, list[Image]] = {
    "Valladolid": [
        image("Valladolid", "cirros", "cirros-0.6.2", 13267968, properties={"type": "base"}),
        image("Valladolid", "base_debian_12", "debian-12-v7", 1073741824),
        image("Valladolid", "ops_tools", "ops-2", 314572800, visibility="private"),
    ],
    "Burgos": [],
    "Caceres": [
        image("Caceres", "cirros", "cirros-0.6.2", 13267968, properties={"type": "base"}),
        image("Caceres", "base_debian_12", "debian-12-v6", 1073700000),
    ],
    "Testing": [],
    "other:Madrid": [],
    "other:Lisboa": [],
}


@pytest.fixture
def fed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path (also the cwd) with glancesync.conf and regions/backup_*.csv."""
    for name in list(os.environ):
        if name.startswith(("OS_", "GLANCESYNC_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "glancesync.conf").write_text(CONFIG)
    regions = tmp_path / "regions"
    regions.mkdir()
    for fullname, images in REGIONS.items():
        write_csv_atomic(str(regions / f"backup_{fullname}.csv"), [i.to_csv_row() for i in images])
    return tmp_path


def gs(fed: Path, *args: str, config: str = "glancesync.conf") -> list[str]:
    return ["--config-file", str(fed / config), "--offline", str(fed / "regions"), *args]


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", re.MULTILINE)


def logs(text: str) -> str:
    """Log lines without their timestamps (every line must have one)."""
    for line in text.splitlines():
        assert TIMESTAMP.match(line), f"log line without a timestamp: {line!r}"
    return TIMESTAMP.sub("", text)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout (data) and stderr (log lines, timestamps stripped)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, logs(err)


def run_cli(fed: Path, *args: str, script: list[str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    console = Path(sys.executable).with_name("glancesync")
    default = [str(console)] if console.exists() else [sys.executable, "-m", "glancesync.cli"]
    command = script or default
    return subprocess.run(
        [*command, *args], cwd=fed, env=env, capture_output=True, text=True, timeout=60
    )


def rows(path: Path) -> list[Image]:
    with open(path, newline="") as f:
        return [Image.from_csv_row(row) for row in csv.reader(f) if row]


def names(fed: Path, region: str) -> list[str]:
    return sorted(i.name or "" for i in rows(fed / "regions" / f"backup_{region}.csv"))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("backup_*.csv"))}


# -- help and version ----------------------------------------------------------------


def test_help_keeps_the_classic_help_texts(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for expected in (
        "A tool to sync images from a master region to other regions",
        "region where the images are uploaded to",
        "--parallel sync several regions in parallel",
        "override configuration options",
        "--dry-run do not upload actually the images",
        "--show-status do not sync, but show the synchronisation status",
        "only show the available regions",
        "make a backup of the regions' metadata",
        "--make-backups, --make-backup",
    ):
        assert expected in text


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"glancesync {glancesync.__version__}"


# -- exit codes --------------------------------------------------------------------------


def test_sync_of_a_region_exits_0(fed, capsys):
    code, out, err = run_main(capsys, *gs(fed, "Burgos"))
    assert (code, out) == (0, "")  # log lines go to stderr
    assert "INFO:Burgos: Uploading image cirros (12.7 MiB)" in err
    assert names(fed, "Burgos") == ["base_debian_12", "cirros"]
    code, _, err = run_main(capsys, *gs(fed, "Burgos"))
    assert code == 0
    assert "INFO:Burgos: Region is synchronized." in err.splitlines()


def test_an_image_needing_the_operator_exits_3_after_syncing_the_rest(fed, capsys):
    code, _, out = run_main(capsys, *gs(fed))  # no region: Caceres, Burgos (preferable)
    assert code == 3
    assert out.index("======Caceres") < out.index("======Burgos")
    assert "WARNING:Image base_debian_12 has a different checksum" in out
    assert (
        "WARNING:Caceres: Region is not fully synchronized; the operator must act on: "
        "base_debian_12 (error_checksum)"
    ) in out
    assert names(fed, "Burgos") == ["base_debian_12", "cirros"]


def test_a_failing_region_is_reported_and_the_others_are_still_synced(fed, capsys):
    (fed / "regions" / "backup_Caceres.csv").write_text('Caceres,"unterminated\r\n')
    code, _, out = run_main(capsys, *gs(fed, "Caceres", "Burgos", "other:Madrid"))
    assert code == 2  # a malformed file: no retry can fix it, the operator must
    errors = [line for line in out.splitlines() if line.startswith("ERROR:")]
    assert errors[0].startswith("ERROR:Caceres: ")
    assert "backup_Caceres.csv, line 1" in errors[0]
    assert names(fed, "Burgos") == ["base_debian_12", "cirros"]
    assert names(fed, "other:Madrid") == ["base_debian_12", "cirros"]


def test_exit_codes_of_the_real_process(fed):
    ok = run_cli(fed, *gs(fed, "--show-status", "Burgos"))
    operator = run_cli(fed, *gs(fed, "--show-status", "Caceres"))
    usage = run_cli(fed, *gs(fed, "--show-status", "--no-such-flag"))
    (fed / "regions" / "backup_Burgos.csv").write_text("Burgos,x\r\n")
    malformed = run_cli(fed, *gs(fed, "Burgos"))
    failed = malformed  # kept for the message check below
    assert [p.returncode for p in (ok, operator, usage, malformed)] == [0, 3, 2, 2]
    assert "error: unrecognized arguments: --no-such-flag" in usage.stderr
    assert "ERROR:Burgos: " in failed.stderr
    assert failed.stdout == ""
    for process in (ok, operator, usage, failed):
        assert "Traceback" not in process.stdout + process.stderr


def test_an_interrupted_offline_sync_keeps_what_was_done_in_a_whole_file(
    fed, capsys, monkeypatch
):
    # Ctrl-C while the second image is being uploaded: the first one is in place, the
    # second one was cleaned up, and the region file is written once, whole.
    import signal

    from glancesync.facade.offline import OfflineFacade

    real_upload = OfflineFacade.upload_image
    uploads: list[str] = []

    def upload(self, region, image, source):
        uploads.append(source.master.name)
        if len(uploads) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_upload(self, region, image, source)

    monkeypatch.setattr(OfflineFacade, "upload_image", upload)
    code, out, err = run_main(capsys, *gs(fed, "Burgos", "other:Madrid"))
    assert code == 130
    assert "interrupted" in (out + err).lower()
    assert names(fed, "Burgos") == [uploads[0]]
    assert names(fed, "other:Madrid") == []  # never started
    assert [p.name for p in (fed / "regions").iterdir() if p.name.startswith(".")] == [
        ".glancesync.lock"
    ]
    monkeypatch.undo()
    code, _, _ = run_main(capsys, *gs(fed, "Burgos", "other:Madrid"))
    assert code == 0
    assert names(fed, "Burgos") == names(fed, "other:Madrid") == ["base_debian_12", "cirros"]


# -- configuration and command-line mistakes: exit 2, one line, no traceback ----------

BAD_CONFIGS = {
    "misspelt_option": (
        CONFIG + "metadata_sett = nid\n",
        [],
        ["metadata_sett", "did you mean 'metadata_set'"],
    ),
    "bad_base64_password": (
        CONFIG.replace(
            f"syncadmin,{PASSWORD},https://keystone.example.org",
            "syncadmin,not*base64,https://keystone.example.org",
        ),
        [],
        ["[master]", "credential", "base64"],
    ),
    "missing_credential_of_a_target": (
        CONFIG + "\n[third]\nmetadata_set = nid\n",
        [],
        ["[third]", "credential"],
    ),
    "unknown_target": (CONFIG, ["nosuch:"], ["nosuch", "known targets"]),
    "unknown_region": (CONFIG, ["Nowhere"], ["Nowhere", "Burgos"]),
    "unknown_region_of_a_target": (CONFIG, ["other:Nowhere"], ["Nowhere", "Madrid"]),
    "unsafe_condition_override": (
        CONFIG,
        ["--config", "metadata_condition=__import__('os').system('true')"],
        ["metadata_condition", "__import__", "not allowed"],
    ),
    "unsafe_condition_in_file": (
        CONFIG + "metadata_condition = image.__class__\n",
        [],
        ["metadata_condition", "__class__"],
    ),
    "config_token_without_equals": (CONFIG, ["--config", "metadata_set"], ["metadata_set"]),
    "override_of_an_unknown_option": (
        CONFIG,
        ["--config", "master.forcesync=abc"],
        ["forcesync", "did you mean 'forcesyncs'"],
    ),
    "override_of_an_unknown_section": (
        CONFIG,
        ["--config", "nosuch.metadata_set=nid"],
        ["[nosuch]", "known sections"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_configuration_mistakes_exit_2_with_one_clear_line(fed, case):
    text, args, words = BAD_CONFIGS[case]
    (fed / "bad.conf").write_text(text)
    process = run_cli(fed, *gs(fed, "--show-status", *args, config="bad.conf"))
    assert process.stdout == ""
    output = logs(process.stderr).strip()
    assert process.returncode == 2, output
    assert len(output.splitlines()) == 1, output
    assert output.startswith("ERROR:")
    for word in words:
        assert word in output
    assert "Traceback" not in output


# -- --config overrides -----------------------------------------------------------------


def test_config_values_may_contain_equals_and_regions_may_follow(fed, capsys):
    condition = "metadata_condition=image.name=='cirros'"
    code, out, _ = run_main(capsys, *gs(fed, "--show-status", "--config", condition, "Burgos"))
    assert (code, out) == (0, "pending_upload,Burgos,cirros\n")
    code, out, _ = run_main(
        capsys, *gs(fed, "--show-status", "Caceres", "--config", condition, "Burgos", "other:")
    )
    assert code == 0
    assert out.splitlines() == [
        "ok,Caceres,cirros",
        "pending_upload,Burgos,cirros",
        "pending_upload,other:Madrid,cirros",
    ]


def test_a_malformed_override_after_config_is_explained(fed, capsys):
    code, _, err = run_main(capsys, *gs(fed, "--show-status", "--config", "metadata_set"))
    assert code == 2
    assert "unknown region 'metadata_set'" in err
    assert "metadata_set: typed after --config, which expects KEY=VALUE" in err


def test_config_override_beats_the_file(fed, capsys):
    # The file names no rule for Caceres' base_debian_12; the override replaces it.
    replace = f"master.replace={md5('debian-12-v6')}"
    code, out, _ = run_main(capsys, *gs(fed, "--show-status", "--config", replace, "Caceres"))
    assert (code, out) == (0, "ok,Caceres,cirros\npending_replace,Caceres,base_debian_12\n")


# -- --show-regions and --show-status ----------------------------------------------------


def test_show_regions_lists_the_run_in_its_order(fed, capsys):
    # No master region, no ignored one; preferable_order (Caceres) first.
    code, out, _ = run_main(capsys, *gs(fed, "--show-regions"))
    assert (code, out) == (0, "Caceres Burgos\n")
    code, out, _ = run_main(capsys, *gs(fed, "--show-regions", "master:", "other:"))
    assert (code, out) == (0, "Caceres Burgos other:Madrid\n")
    code, out, _ = run_main(capsys, *gs(fed, "--show-regions", "other:Madrid", "Burgos"))
    assert (code, out) == (0, "other:Madrid Burgos\n")  # typed: the order typed


def test_show_status_csv_is_status_region_image(fed, capsys):
    code, out, err = run_main(capsys, *gs(fed, "--show-status", "master:", "other:Madrid"))
    assert code == 3
    assert out.splitlines() == [
        "ok,Caceres,cirros",
        "error_checksum,Caceres,base_debian_12",
        "pending_upload,Burgos,cirros",
        "pending_upload,Burgos,base_debian_12",
        "pending_upload,other:Madrid,cirros",
        "pending_upload,other:Madrid,base_debian_12",
    ]
    assert err == ""


def test_show_status_json(fed, capsys):
    args = gs(fed, "--show-status", "--format", "json", "Caceres", "Burgos")
    code, out, _ = run_main(capsys, *args)
    assert code == 3
    report = json.loads(out)
    assert [(r["status"], r["region"], r["image"]) for r in report["images"]] == [
        ("ok", "Caceres", "cirros"),
        ("error_checksum", "Caceres", "base_debian_12"),
        ("pending_upload", "Burgos", "cirros"),
        ("pending_upload", "Burgos", "base_debian_12"),
    ]
    assert report["images"][0]["dest_id"] == "Caceres-cirros"
    assert report["images"][2]["dest_id"] is None
    assert report["obsolete"] == []


def test_show_status_and_dry_run_write_nothing(fed, capsys):
    before = snapshot(fed / "regions")
    run_main(capsys, *gs(fed, "--show-status", "master:", "other:"))
    code, _, out = run_main(capsys, *gs(fed, "--dry-run", "master:", "other:"))
    assert code == 3
    assert "INFO:Burgos: Pending: cirros (12.7 MiB)" in out
    assert "INFO:Burgos: Work pending: 1.0 GiB to upload (2 images), 0 metadata updates" in out
    assert snapshot(fed / "regions") == before


# -- backups -------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--make-backups", "--make-backup"])
def test_backups_of_the_regions_and_master_are_an_offline_directory(fed, capsys, flag):
    code, out, err = run_main(capsys, *gs(fed, flag, "Caceres", "other:Madrid"))
    assert code == 0
    [directory] = fed.glob("backup_glance_*")
    assert out == f"{directory}\n"  # the directory made, for scripts
    assert f"INFO:Backup directory: {directory}" in err
    assert re.fullmatch(r"backup_glance_\d{4}-\d\d-\d\dT[\d.-]+", directory.name)
    assert sorted(p.name for p in directory.glob("*.csv") if p.name.startswith("backup_")) == [
        "backup_Caceres.csv",
        "backup_Valladolid.csv",
        "backup_other:Madrid.csv",
    ]
    for region in ("Valladolid", "Caceres", "other:Madrid"):
        assert f"INFO:Backup of region {region}" in err

    status = ["--show-status", "Caceres", "other:Madrid"]
    _, from_regions, _ = run_main(capsys, *gs(fed, *status))
    code, from_backup, _ = run_main(
        capsys, "--config-file", str(fed / "glancesync.conf"), "--offline", str(directory), *status
    )
    assert code == 3
    assert from_backup == from_regions
    assert from_backup.startswith("ok,Caceres,cirros\nerror_checksum,Caceres,base_debian_12\n")


# -- --parallel ------------------------------------------------------------------------------


def parallel_logs(fed: Path) -> dict[str, str]:
    [logdir] = fed.glob("sync_*")
    assert re.fullmatch(r"sync_\d{8}_\d{6}(_\d+)?", logdir.name)
    return {p.name: p.read_text() for p in logdir.iterdir()}


@pytest.mark.parametrize("children", ["1", "2"])
def test_parallel_logs_each_region_to_its_file(fed, children):
    limit = f"main.max_children={children}"
    process = run_cli(fed, *gs(fed, "--parallel", "--config", limit, "master:", "other:"))
    assert process.returncode == 3, process.stdout + process.stderr  # Caceres' conflict
    assert process.stdout == ""
    out = logs(process.stderr).splitlines()
    [logdir] = fed.glob("sync_*")
    assert out[:2] == [
        "INFO:======Master is Valladolid",
        f"INFO:Log files of the regions: {logdir}",
    ]
    assert sorted(line for line in out if "has finished" in line) == [
        "INFO:Region Burgos has finished",
        "INFO:Region Caceres has finished (some images need the operator)",
        "INFO:Region other:Madrid has finished",
    ]
    assert "INFO:All is done." in out
    files = parallel_logs(fed)
    for text in files.values():
        logs(text)  # timestamped
    assert sorted(files) == ["Burgos.txt", "Caceres.txt", "other:Madrid.txt"]
    assert "INFO:Burgos: Uploading image cirros (12.7 MiB)" in files["Burgos.txt"]
    assert "INFO:Burgos: Total uploaded to region: 1.0 GiB (2 images) in " in files["Burgos.txt"]
    assert "WARNING:Image base_debian_12 has a different checksum" in files["Caceres.txt"]
    assert "INFO:other:Madrid: Image uploaded." in files["other:Madrid.txt"]
    assert names(fed, "other:Madrid") == ["base_debian_12", "cirros"]
    assert "Traceback" not in process.stderr


def test_parallel_exit_2_when_a_region_has_a_malformed_file_while_the_others_succeed(fed):
    (fed / "regions" / "backup_Caceres.csv").write_text("Caceres,only,three\r\n")
    process = run_cli(fed, *gs(fed, "--parallel", "Caceres", "Burgos", "other:Madrid"))
    assert process.returncode == 2  # no retry can fix the file: it outranks a failure
    assert "Region Caceres has finished with errors" in process.stderr
    assert "Region Burgos has finished\n" in process.stderr
    files = parallel_logs(fed)
    assert logs(files["Caceres.txt"]).startswith("ERROR:Caceres: ")
    assert names(fed, "Burgos") == ["base_debian_12", "cirros"]
    assert names(fed, "other:Madrid") == ["base_debian_12", "cirros"]


def test_parallel_dry_run_writes_nothing(fed):
    before = snapshot(fed / "regions")
    process = run_cli(fed, *gs(fed, "--parallel", "--dry-run", "Burgos", "other:Madrid"))
    assert process.returncode == 0, process.stdout + process.stderr
    assert snapshot(fed / "regions") == before
    assert "INFO:Burgos: Pending: base_debian_12 (1.0 GiB)" in parallel_logs(fed)["Burgos.txt"]


# -- one run at a time -----------------------------------------------------------------------


def test_a_second_sync_while_the_lock_is_held_exits_1(fed, capsys):
    before = snapshot(fed / "regions")
    lock = fed / "regions" / ".glancesync.lock"  # the default lock of an offline run
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242")
        holder.flush()
        code, out, err = run_main(capsys, *gs(fed, "Burgos"))
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"ERROR:another glancesync run (pid 4242) holds {lock}; wait for it to finish"
    )
    assert snapshot(fed / "regions") == before
    code, _, _ = run_main(capsys, *gs(fed, "Burgos"))  # released: the next run works
    assert code == 0


def test_explicit_lock_file(fed, capsys):
    lock = fed / "my.lock"
    with open(lock, "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run_main(capsys, *gs(fed, "--lock-file", str(lock), "Burgos"))
    assert code == 1
    assert str(lock) in err


# -- scripts/sync.py -------------------------------------------------------------------------


def test_scripts_sync_py_works_like_glancesync(fed):
    script = [sys.executable, str(ROOT / "scripts" / "sync.py")]
    args = gs(fed, "--show-status", "master:", "other:")
    classic = run_cli(fed, *args, script=script)
    console = run_cli(fed, *args)
    assert (classic.returncode, classic.stdout) == (console.returncode, console.stdout)
    assert classic.returncode == 3
    synced = run_cli(fed, *gs(fed, "Burgos"), script=script)
    assert synced.returncode == 0
    assert "INFO:Burgos: Total uploaded to region: 1.0 GiB (2 images) in " in synced.stderr


def test_parallel_does_not_turn_other_modes_into_a_sync(fed, capsys):
    before = snapshot(fed / "regions")
    code, out, _ = run_main(capsys, *gs(fed, "--parallel", "--show-regions"))
    assert (code, out) == (0, "Caceres Burgos\n")
    code, out, _ = run_main(capsys, *gs(fed, "--parallel", "--show-status", "Burgos"))
    assert (code, out) == (
        0,
        "pending_upload,Burgos,cirros\npending_upload,Burgos,base_debian_12\n",
    )
    code, _, _ = run_main(capsys, *gs(fed, "--parallel", "--make-backups", "Burgos"))
    assert code == 0
    assert len(list(fed.glob("backup_glance_*"))) == 1
    assert snapshot(fed / "regions") == before
    assert not list(fed.glob("sync_*"))


def test_show_status_json_lists_pending_obsolete_renames(fed, capsys):
    scenario = ROOT / "tests" / "scenarios" / "obsolete_two_targets"
    shutil.copytree(scenario / "before", fed / "obsolete")
    args = ["--config-file", str(scenario / "glancesync.conf"), "--offline", str(fed / "obsolete")]
    code, out, err = run_main(
        capsys, *args, "--show-status", "--format", "json", "master:", "other:"
    )
    assert code == 0
    report = json.loads(out)
    assert [(r["status"], r["region"], r["image"]) for r in report["images"]] == [
        ("pending_upload", "Burgos", "app_legacy"),
        ("ok", "Burgos", "base_debian_12"),
        ("ok", "other:Madrid", "base_debian_12"),
    ]
    assert report["obsolete"] == [
        {"region": "Burgos", "image": "base_centos_7", "new_name": "base_centos_7_obsolete"},
        {"region": "other:Madrid", "image": "base_centos_7", "new_name": "base_centos_7_obsolete"},
        {"region": "other:Madrid", "image": "app_legacy", "new_name": "app_legacy_obsolete"},
        {
            "region": "other:Madrid",
            "image": "base_rocky_8_obsolete",
            "new_name": "base_rocky_8_obsolete",
        },
    ]
    assert "WARNING:Ignore obsolete master image app_legacy_obsolete" in err


@pytest.mark.parametrize("mode", [[], ["--dry-run"], ["--show-status"], ["--parallel"]])
def test_a_master_that_cannot_be_read_stops_the_run_with_exit_2(fed, mode):
    (fed / "regions" / "backup_Valladolid.csv").write_text("Valladolid,broken\r\n")
    before = snapshot(fed / "regions")
    process = run_cli(fed, *gs(fed, *mode, "Burgos", "other:Madrid"))
    assert process.returncode == 2  # a malformed master file: no retry can fix it
    assert process.stdout == ""
    errors = logs(process.stderr).strip().splitlines()
    assert errors == [
        f"ERROR:Valladolid: {fed / 'regions' / 'backup_Valladolid.csv'}, line 1: "
        "expected at least 9 fields, found 2"
    ]
    assert snapshot(fed / "regions") == before
    assert not list(fed.glob("sync_*"))


@pytest.mark.parametrize("mode", [[], ["--show-status"], ["--parallel"]])
def test_an_unknown_master_region_exits_2_naming_the_known_ones(fed, mode):
    before = snapshot(fed / "regions")
    process = run_cli(fed, *gs(fed, *mode, "Burgos", "--config", "main.master_region=Nowhere"))
    assert process.returncode == 2  # a wrong name: no retry can fix it
    errors = logs(process.stderr).strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith("ERROR:unknown master_region 'Nowhere'")
    assert "Valladolid" in errors[0]
    assert snapshot(fed / "regions") == before


def test_the_master_region_as_a_destination_reports_ok_and_is_never_written(fed, capsys):
    master_file = fed / "regions" / "backup_Valladolid.csv"
    # A private "old" and its "_obsolete" twin with the same content: on any other region
    # this renames the copy of "old"; on the master itself it must not.
    extra = [
        image("Valladolid", "old", "old-bytes", 1000, id="old", visibility="private"),
        image("Valladolid", "old_obsolete", "old-bytes", 1000, id="old_obs"),
    ]
    write_csv_atomic(str(master_file), [i.to_csv_row() for i in REGIONS["Valladolid"] + extra])
    before = master_file.read_bytes()
    code, _, out = run_main(capsys, *gs(fed, "Valladolid"))
    assert code == 0, out
    assert "Valladolid: Region is synchronized." in out
    assert master_file.read_bytes() == before
    code, out, _ = run_main(capsys, *gs(fed, "--show-status", "Valladolid"))
    assert out.splitlines() == ["ok,Valladolid,cirros", "ok,Valladolid,base_debian_12"]


def test_a_run_leaves_the_garbage_collector_settings_as_they_were(fed, capsys):
    import gc

    before = gc.get_threshold()
    code, _, _ = run_main(capsys, *gs(fed, "--show-status", "Burgos"))
    assert code == 0
    assert gc.get_threshold() == before
