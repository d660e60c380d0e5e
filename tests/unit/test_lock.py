"""The run lock: one per configuration whatever the environment, nothing followed or
truncated, a directory others cannot write, a dead holder never blocks."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glancesync import lock
from glancesync.config import load_settings
from glancesync.exceptions import LockError

CONFIG = """\
[main]
master_region = Valladolid

[master]
user = syncadmin
password = s3cret
keystone_url = {url}
tenant = tenant1
list_images_timeout = 60
retries = 0
"""


@pytest.fixture
def private(tmp_path: Path) -> Path:
    directory = tmp_path / "locks"
    directory.mkdir(mode=0o700)
    return directory


def test_a_planted_symlink_is_refused_and_its_target_untouched(private, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious data\n")
    (private / "run.lock").symlink_to(victim)
    with pytest.raises(LockError, match="is a symbolic link: refusing to follow it"):
        with lock.hold(str(private / "run.lock")):
            pass
    assert victim.read_text() == "precious data\n"


def test_a_given_file_is_never_truncated_nor_written(private):
    given = private / "notes.txt"
    given.write_text("do not lose me\n")
    with lock.hold(str(given)):
        assert given.read_text() == "do not lose me\n"
    assert given.read_text() == "do not lose me\n"


def test_the_holder_pid_is_recorded_in_a_lock_file_of_ours(private):
    path = private / "run.lock"
    path.write_text("123456789\n")  # a longer pid left by an earlier run
    with lock.hold(str(path)):
        assert path.read_text().strip() == str(os.getpid())
        with pytest.raises(LockError, match=rf"another glancesync run \(pid {os.getpid()}\)"):
            with lock.hold(str(path)):
                pass
    with lock.hold(str(path)):  # released at the end of the block
        pass


def test_a_fifo_is_refused_without_hanging(private):
    os.mkfifo(private / "run.lock")
    with pytest.raises(LockError, match="not a regular file"):
        with lock.hold(str(private / "run.lock")):
            pass


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o757])
def test_a_directory_others_can_write_is_refused(tmp_path, mode):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(LockError, match="writable by other users"):
        with lock.hold(str(shared / "run.lock")):
            pass
    assert not (shared / "run.lock").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory away")
def test_a_directory_of_another_user_is_refused(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o755)
    os.chown(foreign, 12345, 12345)
    with pytest.raises(LockError, match="belongs to uid 12345"):
        with lock.hold(str(foreign / "run.lock")):
            pass


def test_a_dead_holder_never_blocks(private):
    path = private / "run.lock"
    code = (
        "import sys, time\n"
        "from glancesync import lock\n"
        "with lock.hold(sys.argv[1]):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            with lock.hold(str(path)):
                pass
    finally:
        holder.kill()  # SIGKILL: no clean-up of any kind
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
    with lock.hold(str(path)):
        pass


def test_the_default_path_depends_on_the_configuration_only(tmp_path):
    config = tmp_path / "glancesync.conf"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/v3"))
    link = tmp_path / "link.conf"
    link.symlink_to(config)
    other = tmp_path / "other.conf"
    other.write_text(CONFIG.format(url="http://127.0.0.1:9/v3"))
    code = (
        "import sys\n"
        "from glancesync import config, lock\n"
        "print(lock.config_key(config.load_settings(sys.argv[1])))\n"
    )

    def key(path: Path, **env: str) -> str:
        environ = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "TMPDIR")}
        environ.update(env)
        out = subprocess.run(
            [sys.executable, "-c", code, str(path)], env=environ, capture_output=True,
            text=True, check=True, cwd=tmp_path,
        )
        return out.stdout.strip()

    cron = key(config)
    assert key(config, XDG_RUNTIME_DIR=str(tmp_path), TMPDIR=str(tmp_path)) == cron
    assert key(link) == cron  # the real path counts
    assert key(Path("glancesync.conf")) == cron  # relative to the working directory
    assert key(other) != cron
    assert lock.lock_dir(0) in ("/run/lock/glancesync", "/var/lock/glancesync")
    assert lock.lock_dir(1000).endswith("/glancesync-1000")


def _wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_cron_run_and_a_login_shell_run_exclude_each_other(tmp_path):
    """Two real CLI processes of one configuration, with different XDG_RUNTIME_DIR and
    TMPDIR: the second is refused while the first (stuck on a Keystone that never
    answers) holds the lock, and runs once it is gone."""
    keystone = socket.socket()
    keystone.bind(("127.0.0.1", 0))
    keystone.listen(8)  # accepts connections (the kernel does), never answers
    url = f"http://127.0.0.1:{keystone.getsockname()[1]}/v3"
    config = tmp_path / "glancesync.conf"
    config.write_text(CONFIG.format(url=url))
    settings = load_settings(str(config))
    path = Path(lock.default_lock_path(settings))
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OS_", "GLANCESYNC_")) and k not in ("XDG_RUNTIME_DIR", "TMPDIR")
    }
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    shell_env = {**base, "XDG_RUNTIME_DIR": str(runtime), "TMPDIR": str(runtime)}
    command = [sys.executable, "-m", "glancesync.cli", "--config-file", str(config)]
    first = subprocess.Popen(
        command, env=shell_env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for(lambda: path.exists() and path.read_text().strip() == str(first.pid))
        second = subprocess.run(
            command, env=base, cwd=tmp_path, capture_output=True, text=True, timeout=60
        )
        out = second.stdout + second.stderr
        assert second.returncode == 1, out
        assert f"another glancesync run (pid {first.pid}) holds {path}" in out
        assert "Traceback" not in out
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 143
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stdout.close()  # type: ignore[union-attr]
        keystone.close()
    # the holder is gone: a third run gets the lock (and fails on the closed Keystone)
    third = subprocess.run(
        command, env=base, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert "holds" not in third.stdout + third.stderr
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o022 == 0
    path.unlink()


def test_peer_lock_files_that_are_no_plain_files_are_ignored(tmp_path):
    base = tmp_path / "base"
    (base / "glancesync").mkdir(parents=True, mode=0o755)
    (base / "glancesync-1000").mkdir(mode=0o755)
    (base / "glancesync-1001").mkdir(mode=0o755)
    victim = tmp_path / "victim"
    victim.write_text("precious data\n")
    (base / "glancesync-1000" / "k.lock").symlink_to(victim)
    os.mkfifo(base / "glancesync-1001" / "k.lock")
    own = str(base / "glancesync" / "k.lock")
    assert len(lock.peer_paths(own)) == 2
    with lock.hold(own, lambda: lock.peer_paths(own)):
        pass
    assert victim.read_text() == "precious data\n"


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("flock"), reason="needs root and flock(1)"
)
def wait_until_free(path: str, timeout: float = 10.0) -> None:
    """SIGKILL reaches the whole group at once, but the last process may let go of the
    lock a moment after the group leader has been reaped (seen on a loaded machine)."""
    deadline = time.monotonic() + timeout
    with open(path) as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                assert time.monotonic() < deadline, f"{path} still held after {timeout} s"
                time.sleep(0.05)
            else:
                fcntl.flock(handle, fcntl.LOCK_UN)
                return


def test_runs_of_one_configuration_by_two_users_exclude_each_other(tmp_path):
    """The service user (systemd) holds its lock: root's run by hand is refused; root
    holds its lock: the service user cannot take it. (flock(1) plays the service user's
    run: this interpreter may not be readable by another user.)"""
    config = tmp_path / "glancesync.conf"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/v3"))
    own = lock.default_lock_path(load_settings(str(config)))
    other_user = os.path.join(lock.lock_dir(54321), os.path.basename(own))
    script = (
        'mkdir -p -m 755 "$(dirname "$1")" && exec flock -n "$1" '
        'sh -c \'echo $$ > "$1"; echo ready; exec sleep 60\' sh "$1"'
    )
    holder = subprocess.Popen(
        ["sh", "-c", script, "sh", other_user], stdout=subprocess.PIPE, text=True,
        user=54321, group=54321, cwd="/", start_new_session=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        with pytest.raises(LockError, match=rf"\(pid \d+\) holds {other_user}"):
            with lock.hold(own, lambda: lock.peer_paths(own)):
                pass
    finally:
        os.killpg(holder.pid, signal.SIGKILL)  # flock(1) and the shell holding the lock
        holder.wait()
        holder.stdout.close()  # type: ignore[union-attr]
        wait_until_free(other_user)
    with lock.hold(own, lambda: lock.peer_paths(own)):  # the holder is gone
        refused = subprocess.run(
            ["flock", "-n", own, "true"], user=54321, group=54321, cwd="/", timeout=60
        )
        assert refused.returncode == 1  # readable by the other user, and held
    shutil.rmtree(os.path.dirname(other_user))
    os.unlink(own)


def test_the_cli_refuses_an_unsafe_lock_file_with_one_line_and_exit_2(tmp_path, capsys):
    from glancesync.cli import main

    config = tmp_path / "glancesync.conf"
    config.write_text(CONFIG.format(url="http://127.0.0.1:9/v3"))
    victim = tmp_path / "victim"
    victim.write_text("precious data\n")
    planted = tmp_path / "planted.lock"
    planted.symlink_to(victim)
    code = main(["--config-file", str(config), "--lock-file", str(planted)])
    captured = capsys.readouterr()
    assert code == 2
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1
    assert f"lock file {planted} is a symbolic link: refusing to follow it" in lines[0]
    assert victim.read_text() == "precious data\n"
