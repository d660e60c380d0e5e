"""Logging as an operator sees it: stderr vs stdout, timestamps, -q/-v/--debug, --log-file,
secrets masked, a closed pipe, and no logging state left behind by main()."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import test_cli
from test_cli import gs, logs, run_cli

from glancesync import logsetup
from glancesync.cli import main

fed = test_cli.fed  # the offline federation of test_cli

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR):")


def test_log_lines_have_timestamps_and_go_to_stderr(fed):
    process = run_cli(fed, *gs(fed, "--dry-run", "Burgos"))
    assert process.returncode == 0
    assert process.stdout == ""
    lines = process.stderr.splitlines()
    assert lines and all(LINE.match(line) for line in lines), process.stderr
    assert "INFO:Burgos: Pending: cirros" in process.stderr


def test_quiet_shows_only_warnings_and_errors(fed, capsys):
    assert main(gs(fed, "-q", "--dry-run", "Caceres")) == 3
    err = logs(capsys.readouterr().err)
    assert err.splitlines() and all(
        line.startswith(("WARNING:", "ERROR:")) for line in err.splitlines()
    ), err
    assert "WARNING:Image base_debian_12 has a different checksum" in err


def test_verbose_and_debug_add_debug_lines_and_still_show_info(fed, capsys):
    for flag in ("-v", "-vv", "--debug"):
        assert main(gs(fed, flag, "--dry-run", "Burgos")) == 0
        err = logs(capsys.readouterr().err)
        assert "INFO:Burgos: Pending: cirros" in err
        assert "DEBUG:Valladolid: 3 images in the master region" in err
        assert "DEBUG:Burgos: 0 images listed" in err
    assert main(gs(fed, "--dry-run", "Burgos")) == 0
    assert "DEBUG:" not in capsys.readouterr().err


def test_log_file_gets_the_same_lines_appended(fed, capsys):
    path = fed / "glancesync.log"
    path.write_text("earlier line\n")
    assert main(gs(fed, "--log-file", str(path), "--dry-run", "Burgos")) == 0
    err = capsys.readouterr().err
    text = path.read_text()
    assert text.startswith("earlier line\n")
    assert text.splitlines()[1:] == err.splitlines()


def test_an_unwritable_log_file_is_one_line_exit_2(fed, capsys):
    code = main(gs(fed, "--log-file", str(fed / "no" / "such" / "dir.log"), "Burgos"))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ERROR:cannot open the log file ")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "secret_line",
    [
        'REQ: curl -g -i -X GET http://k/v3 -H "X-Auth-Token: gAAAAABsecret-token-value"',
        'REQ: curl -H "X-Auth-Token: {SHA256}0123456789abcdef" http://g/v2/images',
        "RESP: [201] X-Subject-Token: gAAAAABsecret-token-value Vary: X-Auth-Token",
        'REQ BODY: {"auth": {"identity": {"password": {"user": {"name": "admin", '
        '"password": "s3cret-pass"}}}}}',
        '{"auth": {"identity": {"methods": ["token"], "token": {"id": "gAAAAABsecret"}}}}',
        '{"application_credential": {"id": "abc", "secret": "s3cret-pass"}}',
        "POST /token grant_type=password&password=s3cret-pass&user=admin",
    ],
)
def test_tokens_and_passwords_are_masked_whoever_logs_them(secret_line, tmp_path: Path):
    path = tmp_path / "debug.log"
    with logsetup.configured(logsetup.DEBUG, str(path), stream=open(os.devnull, "w")):
        logging.getLogger("keystoneauth.session").debug("%s", secret_line)
        logging.getLogger("glancesync").info(secret_line)
    text = path.read_text()
    assert len(text.splitlines()) == 2
    for secret in ("s3cret-pass", "secret-token-value", "gAAAAABsecret", "0123456789abcdef"):
        assert secret not in text
    assert "***" in text


def test_http_libraries_are_shown_only_with_debug(tmp_path: Path):
    path = tmp_path / "log"
    with logsetup.configured(logsetup.VERBOSE, str(path), stream=open(os.devnull, "w")):
        logging.getLogger("keystoneauth.session").debug("REQ: hidden")
        logging.getLogger("glancesync").debug("own debug line")
    assert "hidden" not in path.read_text()
    assert "DEBUG:own debug line" in path.read_text()


def test_main_leaves_the_logging_state_as_it_found_it(fed, capsys):
    names = ["glancesync", *logsetup.HTTP_LOGGERS]
    before = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level,
            logging.getLogger(n).propagate)
        for n in names
    }  # fmt: skip
    for args in (["--debug", "--dry-run", "Burgos"], ["Burgos"], ["--show-status"]):
        main(gs(fed, *args))
        after = {
            n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level,
                logging.getLogger(n).propagate)
            for n in names
        }  # fmt: skip
        assert after == before
    capsys.readouterr()


def test_caplog_still_sees_glancesync_records_after_main(fed, capsys, caplog):
    main(gs(fed, "--dry-run", "Burgos"))
    with caplog.at_level(logging.INFO, logger="glancesync"):
        logging.getLogger("glancesync").info("after main")
    assert "after main" in caplog.text


def closed_pipe() -> int:
    """The write end of a pipe whose reader is gone: every write gets EPIPE."""
    read, write = os.pipe()
    os.close(read)
    return write


def run_with(fed: Path, args: list[str], stdout, stderr) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    console = Path(sys.executable).with_name("glancesync")
    command = [str(console)] if console.exists() else [sys.executable, "-m", "glancesync.cli"]
    return subprocess.run(
        command + gs(fed, *args), stdout=stdout, stderr=stderr, env=env, cwd=fed, timeout=60
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--show-status", "master:", "other:"],
        ["--show-regions"],
        ["--dry-run", "--format", "json", "--report", "report.json", "master:", "other:"],
    ],
)
def test_a_closed_stdout_ends_quietly_with_141(fed, args):
    # `glancesync --show-status | head -1`
    pipe = closed_pipe()
    try:
        process = run_with(fed, args, pipe, subprocess.PIPE)
    finally:
        os.close(pipe)
    assert process.returncode == 141
    assert b"Traceback" not in process.stderr
    assert b"Error" not in process.stderr  # no "BrokenPipeError", no "Exception ignored"
    if "--report" in args:  # written before stdout was tried
        assert (fed / "report.json").is_file()


def test_a_closed_stderr_does_not_stop_the_run(fed):
    # `glancesync Burgos 2>&1 | head -1`: the sync still finishes its work.
    pipe = closed_pipe()
    try:
        dry = run_with(fed, ["--dry-run", "master:", "other:"], subprocess.PIPE, pipe)
        sync = run_with(fed, ["Burgos"], pipe, pipe)
    finally:
        os.close(pipe)
    assert (dry.returncode, dry.stdout) == (3, b"")
    assert sync.returncode == 0
    assert "cirros" in (fed / "regions" / "backup_Burgos.csv").read_text()


def test_lines_of_the_old_tool_are_kept_byte_for_byte(fed, capsys):
    # Scripts grep for these exactly as GlanceSync 1.7 printed them.
    (fed / "regions" / "backup_Caceres.csv").write_text("Caceres,x\r\n")
    code, out, err = test_cli.run_main(capsys, *gs(fed, "--make-backups", "Burgos", "Caceres"))
    assert code == 1
    assert "INFO:Backup of region Burgos\n" in err
    assert "\nERROR:Caceres:Error retrieving images from region. Cause Caceres: " in err
