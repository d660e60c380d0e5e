"""Offline scenarios through the real CLI: `glancesync --offline DIR ...`.

Each directory here is one scenario:

    glancesync.conf        the configuration
    args                   region arguments (one line; optional, default none)
    before/backup_*.csv    the regions before the sync
    status_before.csv      expected `--show-status` output before
    expected_exit          expected exit code of the sync and of the status (default 0)
    after/backup_*.csv     the regions after the sync
    status_after.csv       expected `--show-status` output after
    output.txt             log lines that must appear in the sync's stderr (timestamps
                           stripped), in this order (each one a substring of a line;
                           optional)

For each one: status before, dry run (every byte unchanged, sequential and --parallel),
sync, files after, status after, and a second sync that changes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SCENARIOS = sorted(p.name for p in HERE.iterdir() if (p / "glancesync.conf").is_file())


def glancesync_command() -> list[str]:
    script = Path(sys.executable).with_name("glancesync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "glancesync.cli"]


def run(workdir: Path, scenario: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    cmd = glancesync_command() + [
        "--config-file", str(scenario / "glancesync.conf"),
        "--offline", str(workdir / "regions"),
        *args,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=60)


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", re.MULTILINE)


def log_lines(text: str) -> str:
    """stderr's log lines without their timestamps (every line has one)."""
    for line in text.splitlines():
        assert TIMESTAMP.match(line), f"log line without a timestamp: {line!r}"
    return TIMESTAMP.sub("", text)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("backup_*.csv"))}


def read_text(path: Path, default: str = "") -> str:
    return path.read_text() if path.exists() else default


def assert_lines_in_order(expected: list[str], output: str) -> None:
    """Each expected line is part of an output line, after the previous one's line."""
    lines = iter(output.splitlines())
    for wanted in expected:
        if not any(wanted in line for line in lines):
            raise AssertionError(f"missing (or out of order) output line: {wanted}\n{output}")


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str, tmp_path: Path) -> None:
    scenario = HERE / name
    regions = tmp_path / "regions"
    shutil.copytree(scenario / "before", regions)
    region_args = read_text(scenario / "args").split()
    expected_exit = int(read_text(scenario / "expected_exit", "0").strip())

    status = run(tmp_path, scenario, "--show-status", *region_args)
    assert status.stdout == read_text(scenario / "status_before.csv"), status.stderr
    assert status.returncode == expected_exit, status.stderr
    assert "Traceback" not in status.stderr

    before = snapshot(regions)
    for mode in (["--dry-run"], ["--dry-run", "--parallel"]):
        dry = run(tmp_path, scenario, *mode, *region_args)
        assert dry.returncode == expected_exit, dry.stdout + dry.stderr
        assert snapshot(regions) == before, f"{mode} changed a region file"
        for done in ("Image uploaded.", "Updating the metadata", "updating obsolete image"):
            assert done not in dry.stderr, f"{mode} says it did something: {done}"

    sync = run(tmp_path, scenario, *region_args)
    assert sync.returncode == expected_exit, sync.stdout + sync.stderr
    assert "Traceback" not in sync.stdout + sync.stderr
    assert sync.stdout == ""  # log lines go to stderr
    assert_lines_in_order(read_text(scenario / "output.txt").splitlines(), log_lines(sync.stderr))
    assert snapshot(regions) == snapshot(scenario / "after")

    status = run(tmp_path, scenario, "--show-status", *region_args)
    assert status.stdout == read_text(scenario / "status_after.csv"), status.stderr
    assert status.returncode == expected_exit
    for line in status.stdout.splitlines():
        assert line.split(",")[0] in ("ok", "ok_stalled_checksum", "error_checksum", "error_ami")

    again = run(tmp_path, scenario, *region_args)
    assert again.returncode == expected_exit, again.stdout + again.stderr
    assert snapshot(regions) == snapshot(scenario / "after"), "second sync changed something"
    for ref in region_args or []:
        if not ref.endswith(":"):
            assert f"{ref}: Region is" in again.stderr
