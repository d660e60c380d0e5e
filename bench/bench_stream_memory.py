"""Streaming upload memory: peak RSS of the upload path for a big image (target < 100 MB).

    .venv/bin/python bench/bench_stream_memory.py [SIZE_MIB]      # default 1024 MiB
    GLANCESYNC_BENCH_MIB=64 .venv/bin/python bench/bench_stream_memory.py

Brings up the Keystone + Glance test bed (tests/integration/testbed.py; with
GLANCESYNC_TESTBED_BASE=<dir> it uses a running one instead), streams a SIZE_MIB image into
Master from a generator, then runs the tool's upload path -- ``source_for`` streaming from
Master's API + ``OpenStackFacade.upload_image`` into RegionA -- in a child process, and
prints that child's peak RSS (wait4 ru_maxrss), its RSS before the upload (interpreter and
libraries), the elapsed time and the throughput. Prints figures; asserts nothing.

Needs 2 x SIZE_MIB of free disk where the test bed keeps its images (a temporary dir).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "integration"))

MiB = 1024 * 1024
MASTER, DESTINATION, CLI_DESTINATION = "Master", "RegionA", "RegionB"


# -- parent: test bed, source image, child, report ---------------------------------------
def main() -> int:
    args = parse_args()
    if args.child:
        return child(json.loads(sys.stdin.read()))
    import testbed as tb  # stdlib only; the servers live in their own venv

    base = os.environ.get("GLANCESYNC_TESTBED_BASE")
    bed = tb.TestBed.attach(base) if base else tb.TestBed()
    try:
        if not base:
            bed.start()
        return run(bed.env, args.size_mib)
    finally:
        bed.stop()  # an attached bed is left running


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "size_mib",
        nargs="?",
        type=int,
        default=int(os.environ.get("GLANCESYNC_BENCH_MIB", "1024")),
        help="image size in MiB (default 1024, or $GLANCESYNC_BENCH_MIB)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return ap.parse_args()


def run(env: dict[str, str], size_mib: int) -> int:
    from glancesync.facade.openstack import OpenStackFacade

    facade = OpenStackFacade("master", credentials(env), timeout=60)
    client = facade._client(MASTER)  # the bench's own set-up; the tool never does this
    size = size_mib * MiB
    print(f"creating a {size_mib} MiB image in {MASTER} (streamed from a generator) ...")
    started = time.monotonic()
    image = client.images.create(
        name=f"bench-{size_mib}MiB",
        disk_format="raw",
        container_format="bare",
        visibility="private",
    )
    client.images.upload(image["id"], GeneratedFile(size), image_size=size)
    print(f"  done in {time.monotonic() - started:.1f} s")
    try:
        report(size, run_child(env, image["id"]))
        report_cli(size, run_cli(env, image["id"]))
    finally:
        cleanup(facade, image["id"])
    return 0


def run_child(env: dict[str, str], image_id: str) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps({"env": env, "image_id": image_id}))
    proc.stdin.close()
    output, usage = wait_measured(proc, "child")
    return {**json.loads(output), **usage}


def wait_measured(proc: subprocess.Popen, what: str) -> tuple[str, dict[str, Any]]:
    """The process's output, peak RSS and CPU time; SystemExit if it failed."""
    assert proc.stdout is not None
    output = proc.stdout.read()
    # wait4 gives this child's own rusage (RUSAGE_CHILDREN would also count the test bed's
    # keystone-manage runs); ru_maxrss is in KiB on Linux.
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{what} failed (status {status}): {output}")
    return output, {"maxrss_kib": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}


def run_cli(env: dict[str, str], image_id: str) -> dict[str, Any]:
    """The whole tool: `glancesync RegionB` as an operator runs it, in its own process."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "glancesync.conf"
        # The bench image is private: forcesyncs selects it.
        config.write_text(f"[main]\nmaster_region = {MASTER}\n[master]\nforcesyncs = {image_id}\n")
        cmd = [str(Path(sys.executable).with_name("glancesync")), "--config-file", str(config)]
        child_env = dict(os.environ, **env, GLANCESYNC_LOCK_FILE=str(Path(tmp) / "lock"))
        started = time.monotonic()
        proc = subprocess.Popen(
            cmd + [CLI_DESTINATION],
            env=child_env,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        _, usage = wait_measured(proc, "glancesync")
        return {"elapsed": time.monotonic() - started, **usage}


def report_cli(size: int, result: dict[str, Any]) -> None:
    elapsed = result["elapsed"]
    print(f"whole CLI `glancesync {CLI_DESTINATION}` (streamed from {MASTER}):")
    print(f"  elapsed             {elapsed:10.1f} s (start-up, listings, upload, verify)")
    print(f"  throughput          {size / 1e6 / elapsed:10.1f} MB/s")
    print(f"  CPU time            {result['cpu_s']:10.1f} s")
    print(f"  peak RSS (wait4)    {result['maxrss_kib'] / 1024:10.1f} MiB   target < 100 MB")


def report(size: int, result: dict[str, Any]) -> None:
    elapsed = result["elapsed"]
    print(f"upload path {MASTER} -> {DESTINATION} in a child process:")
    print(f"  image size          {size / MiB:10.0f} MiB")
    print(f"  elapsed             {elapsed:10.1f} s")
    print(f"  throughput          {size / 1e6 / elapsed:10.1f} MB/s")
    print(f"  child CPU time      {result['cpu_s']:10.1f} s (hashing md5 + multihash, HTTP)")
    print(f"  RSS before upload   {result['rss_before_kib'] / 1024:10.1f} MiB (imports, session)")
    print(f"  peak RSS (VmHWM)    {result['vmhwm_kib'] / 1024:10.1f} MiB")
    print(f"  peak RSS (wait4)    {result['maxrss_kib'] / 1024:10.1f} MiB   target < 100 MB")
    print(f"  checksum verified   {result['checksum']}")


def cleanup(facade: Any, master_id: str) -> None:
    for region in (MASTER, DESTINATION, CLI_DESTINATION):
        for image in facade.list_images(region):
            if image.name and image.name.startswith("bench-") or image.id == master_id:
                facade.delete_image(region, image.id)


# -- child: exactly the tool's upload path ----------------------------------------------
def child(job: dict[str, Any]) -> int:
    from glancesync.facade.openstack import OpenStackFacade
    from glancesync.transfer import source_for

    facade = OpenStackFacade("master", credentials(job["env"]), timeout=60)
    master = next(i for i in facade.list_images(MASTER) if i.id == job["image_id"])
    rss_before = proc_status_kib("VmRSS")
    started = time.monotonic()
    source = source_for(master, None, facade, MASTER, progress=False)
    new = facade.upload_image(DESTINATION, master, source)
    elapsed = time.monotonic() - started
    json.dump(
        {
            "elapsed": elapsed,
            "rss_before_kib": rss_before,
            "vmhwm_kib": proc_status_kib("VmHWM"),
            "checksum": new.checksum == master.checksum and new.size == master.size,
        },
        sys.stdout,
    )
    return 0


# -- helpers ----------------------------------------------------------------------------
def credentials(env: dict[str, str]) -> Any:
    from glancesync.config import Credentials

    return Credentials(
        auth_url=env["OS_AUTH_URL"],
        username=env["OS_USERNAME"],
        password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"],
        user_domain_name=env["OS_USER_DOMAIN_NAME"],
        project_domain_name=env["OS_PROJECT_DOMAIN_NAME"],
    )


def proc_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class GeneratedFile(io.RawIOBase):
    """``size`` bytes made on the fly (1 MiB of random bytes, each copy numbered).

    A file-like object is what glanceclient streams; the image never sits in memory.
    """

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = os.urandom(MiB)
        self._chunks = self._generate()

    def _generate(self) -> Iterator[bytes]:
        number = 0
        while self._left > 0:
            chunk = (number.to_bytes(8, "big") + self._block[8:])[: self._left]
            self._left -= len(chunk)
            number += 1
            yield chunk

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # glanceclient asks for 1 MiB at a time
        return next(self._chunks, b"")


if __name__ == "__main__":
    sys.exit(main())
