"""Offline `--show-status` plans regions in worker processes, one per CPU: what it prints
(statuses, JSON, log lines, exit code) is exactly what one process prints, and an
interrupted status leaves no worker behind.

One process is forced by limiting the command to one CPU (its affinity), as an operator
running it under `taskset -c 0` would.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_scenarios import HERE, SCENARIOS, glancesync_command, log_lines

CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
needs_two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="worker processes need 2 CPUs")
WORKERS_LINE = "worker processes"


def status(
    config: Path, regions: Path, *args: str, one_cpu: bool = False
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    cmd = glancesync_command() + [
        "--config-file", str(config), "--offline", str(regions), "--show-status", "-v", *args,
    ]  # fmt: skip

    def limit() -> None:
        os.sched_setaffinity(0, CPUS[:1])

    return subprocess.run(
        cmd,
        cwd=regions.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit if one_cpu else None,
    )


def assert_same_status(config: Path, regions: Path, *args: str) -> subprocess.CompletedProcess:
    """The status with worker processes and with one process; returns the former."""
    workers = status(config, regions, *args)
    single = status(config, regions, *args, one_cpu=True)
    assert WORKERS_LINE not in single.stderr
    assert (workers.returncode, workers.stdout) == (single.returncode, single.stdout)
    shown = [ln for ln in log_lines(workers.stderr).splitlines() if WORKERS_LINE not in ln]
    assert shown == log_lines(single.stderr).splitlines()
    assert "Traceback" not in workers.stderr
    return workers


@needs_two_cpus
@pytest.mark.parametrize("fmt", ["csv", "json"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_status_is_the_same_in_worker_processes(
    name: str, fmt: str, tmp_path: Path
) -> None:
    scenario = HERE / name
    regions = tmp_path / "regions"
    shutil.copytree(scenario / "before", regions)
    args = (scenario / "args").read_text().split() if (scenario / "args").exists() else []
    workers = assert_same_status(scenario / "glancesync.conf", regions, "--format", fmt, *args)
    if fmt == "csv":
        assert workers.stdout == (scenario / "status_before.csv").read_text()
        if len({line.split(",")[1] for line in workers.stdout.splitlines()}) > 1:
            assert WORKERS_LINE in workers.stderr


CONFIG = """[main]
master_region = Master

[master]
tenant_id = tenant1id
metadata_set = nid
metadata_condition = int(image.user_properties['nid']) > 1
"""


def write_region(regions: Path, region: str, rows: list[list[str]]) -> None:
    with open(regions / f"backup_{region}.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)


def row(region: str, name: str, image_id: str, checksum: str, props: dict[str, str],
        owner: str = "tenant1id") -> list[str]:  # fmt: skip
    return [region, name, image_id, "active", "1024", checksum, owner, "True", repr(props)]


@needs_two_cpus
def test_errors_and_warnings_come_in_region_order(tmp_path: Path) -> None:
    # A condition failing on one image (a warning per region), a malformed region file
    # (exit 2, the others still shown), another project's copy, a copy of other content.
    regions = tmp_path / "regions"
    regions.mkdir()
    config = tmp_path / "glancesync.conf"
    config.write_text(CONFIG)
    master = [
        row("Master", f"img{n}", f"m{n}", f"{n:032x}", {"nid": str(n)}) for n in range(2, 40)
    ] + [row("Master", "broken", "mb", "f" * 32, {"nid": "not a number"})]
    write_region(regions, "Master", master)
    for r in range(6):
        write_region(regions, f"Region{r}", [
            row(f"Region{r}", f"img{n}", f"r{r}-{n}",
                f"{n + (n == r + 3):032x}",  # one copy of other content per region
                {"nid": str(n - (n % 7 == 0))},  # stale metadata on some
                "other" if n == r + 10 else "tenant1id")  # another project's copy
            for n in range(2, 40, 1 + r % 2)
        ])  # fmt: skip
    (regions / "backup_Region3.csv").write_text("Region3,img2,r3-2,active,1,x,tenant1id,True,{[\n")
    result = assert_same_status(config, regions)
    assert result.returncode == 2
    assert "planning 6 regions in 2 worker processes" in result.stderr
    assert "ERROR:Region3: " in result.stderr and "backup_Region3.csv, line 1" in result.stderr
    assert result.stderr.count("failed on image broken (mb)") == 5  # each region planned
    assert result.stderr.count("is owned by other tenant") == 3
    assert "error_checksum,Region0,img3\n" in result.stdout
    assert "Region3" not in result.stdout


def big_offline_dir(tmp_path: Path, regions: int, images: int) -> tuple[Path, Path]:
    directory = tmp_path / "regions"
    directory.mkdir()
    config = tmp_path / "glancesync.conf"
    config.write_text("[main]\nmaster_region = Master\n\n[master]\ntenant_id = t1\n")
    props = repr({"nid": "1", "type": "baseimages"})

    def rows(region: str) -> list[list[str]]:
        return [[region, f"image{n:06d}", f"{region}-{n}", "active", str(n), f"{n:032x}",
                 "t1", "True", props] for n in range(images)]  # fmt: skip

    write_region(directory, "Master", rows("Master"))
    for r in range(regions):
        write_region(directory, f"Region{r:02d}", rows(f"Region{r:02d}"))
    return config, directory


def processes() -> Iterator[tuple[int, list[str]]]:
    """(pid, fields of /proc/PID/stat after the command name) of every process."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            yield int(entry), stat.rsplit(")", 1)[1].split()


def children_of(pid: int) -> list[int]:
    return [child for child, fields in processes() if int(fields[1]) == pid]


def in_session(sid: int) -> list[int]:
    """The live (not zombie) processes of a session."""
    return [p for p, fields in processes() if int(fields[3]) == sid and fields[0] != "Z"]


def assert_whole_regions(out: str, images: int = 20_000) -> None:
    """``out`` holds the status lines of the first regions (of status_with_workers'), each
    one whole: a status prints every region as soon as it is planned, in region order."""
    lines = out.splitlines(keepends=True)
    regions = [line.split(",")[1] for line in lines[::images]]
    assert regions == [f"Region{r:02d}" for r in range(len(regions))]
    for n, region in enumerate(regions):
        shown = lines[n * images : (n + 1) * images]
        assert len(shown) == images
        assert all(line.split(",")[1] == region and line.endswith("\n") for line in shown)


def status_with_workers(
    tmp_path: Path, act: Callable[[int, list[int]], None], printed: bool = False
) -> tuple[subprocess.Popen, str, str]:
    """Start a big offline status in its own session; once its two workers run (once it
    has printed something, with ``printed``), ``act(its pid, the workers' pids)``; its
    output when it has ended."""
    config, regions = big_offline_dir(tmp_path, regions=8, images=20_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    cmd = glancesync_command() + [
        "--config-file", str(config), "--offline", str(regions), "--show-status",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    first = b""
    try:
        if printed:
            assert proc.stdout is not None
            first = os.read(proc.stdout.fileno(), 100)  # (then it reads nothing more)
            assert first and proc.poll() is None, "the status ended before printing anything"
        deadline = time.monotonic() + 60
        while len(workers := children_of(proc.pid)) < 2:  # the workers are planning
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no worker processes started"
            time.sleep(0.02)
        act(proc.pid, workers)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc, first.decode() + out, err


@needs_two_cpus
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["INT", "TERM"]
)
def test_an_interrupted_status_stops_its_workers(
    signum: int, code: int, tmp_path: Path
) -> None:
    # As Ctrl-C (the whole group) or a service stop.
    proc, out, err = status_with_workers(tmp_path, lambda pid, _workers: os.killpg(pid, signum))
    assert proc.returncode == code, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert_whole_regions(out)  # the regions planned before it, if any, and nothing else
    deadline = time.monotonic() + 10
    while in_session(proc.pid):  # the workers go with the run
        assert time.monotonic() < deadline, f"workers left running: {in_session(proc.pid)}"
        time.sleep(0.05)


@needs_two_cpus
def test_a_killed_worker_fails_the_status_with_one_line(tmp_path: Path) -> None:
    # As the kernel's OOM killer would.
    proc, out, err = status_with_workers(
        tmp_path, lambda _pid, workers: os.kill(workers[0], signal.SIGKILL)
    )
    assert proc.returncode == 1, err
    assert "ERROR:a status worker process was killed by SIGKILL" in err
    assert "Traceback" not in err
    assert_whole_regions(out)


@needs_two_cpus
def test_each_region_is_printed_as_soon_as_it_is_planned(tmp_path: Path) -> None:
    """The first region's lines come while the others are still being planned. Stopped
    then, while it waits for a reader that reads nothing more, the status finishes writing
    that region: it has printed whole regions, not all of them."""
    proc, out, err = status_with_workers(
        tmp_path, lambda pid, _workers: os.killpg(pid, signal.SIGTERM), printed=True
    )
    assert proc.returncode == 143, err
    assert_whole_regions(out)
    assert 20_000 <= len(out.splitlines()) < 8 * 20_000
