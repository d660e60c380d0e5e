"""Offline mode at scale: `--show-status` over many regions, many metadata updates.

    .venv/bin/python bench/bench_offline_scale.py                # 10,000 x 20; 1,000 in 5,000
    .venv/bin/python bench/bench_offline_scale.py --images 2000 --regions 5 \\
        --region-images 1000 --updates 200

Writes a temporary offline directory (backup_<region>.csv files, as --make-backups does)
and runs the real CLI on it, as a user would (interpreter start-up included):

1. ``glancesync --offline DIR --show-status``: a master of N images and R regions holding
   a copy of each (one in ten with an older ``nid``, so statuses vary). Goal < 2 s for
   10,000 images x 20 regions. Run as is (worker processes, one per CPU) and kept to one
   CPU (its affinity, as ``taskset -c 0``: one process).
2. ``glancesync --offline DIR Region``: a region of M images of which U differ from the
   master only in metadata: U metadata updates, every region file written atomically.
   Goal < 5 s for 1,000 updates in a 5,000-image region. The result is checked (every
   copy has the master's metadata afterwards, the status is all ``ok``).

Prints the wall time and the CPU time of the glancesync process and its workers (on a busy
machine the CPU time is the steadier figure). Asserts nothing (timings are noisy, they are
read, not tested).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TENANT = "tenant1id"
CONFIG = f"""[main]
master_region = Master

[master]
tenant_id = {TENANT}
metadata_set = nid, type
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10_000, help="master images for --show-status")
    ap.add_argument("--regions", type=int, default=20, help="regions for --show-status")
    ap.add_argument("--region-images", type=int, default=5_000,
                    help="images in the region that gets the metadata updates")
    ap.add_argument("--updates", type=int, default=1_000, help="metadata updates to make")
    ap.add_argument("--rounds", type=int, default=3, help="runs of each; the best is reported")
    args = ap.parse_args()
    if args.updates > args.region_images:
        ap.error("--updates cannot exceed --region-images")
    with tempfile.TemporaryDirectory(prefix="bench-offline-") as tmp:
        what = f"--show-status, {args.images} images x {args.regions} offline regions"
        report(what, [bench_status(Path(tmp) / f"s{n}", args) for n in range(args.rounds)], 2)
        if hasattr(os, "sched_setaffinity"):
            report(f"{what}, one CPU",
                   [bench_status(Path(tmp) / f"c{n}", args, one_cpu=True)
                    for n in range(args.rounds)], 2)  # fmt: skip
        report(f"sync, {args.updates} metadata updates in a {args.region_images}-image region",
               [bench_updates(Path(tmp) / f"u{n}", args) for n in range(args.rounds)], 5)
    return 0


def report(what: str, runs: list[tuple[float, float]], goal: float) -> None:
    wall, cpu = min(runs)
    median = statistics.median(w for w, _ in runs)
    all_runs = ", ".join(f"{w:.2f}" for w, _ in runs)
    print(f"{what}:\n  wall {wall:6.2f} s best, {median:.2f} s median (of {len(runs)}: "
          f"{all_runs}), CPU {cpu:6.2f} s   goal < {goal} s; load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs", flush=True)


def row(region: str, n: int, nid: int) -> list[str]:
    """One backup row (the 17 fields --make-backups writes) of image number ``n``."""
    props = repr({"nid": str(nid), "type": "baseimages", "sdc_aware": "true"})
    return [region, f"image{n:06d}", f"{region}-{n:06d}", "active", str(1024 * (n % 977 + 1)),
            f"{n:032x}", TENANT, "True", props, "sha512", f"{n:0128x}", "qcow2", "bare",
            "0", "0", "False", "False"]


def write_region(directory: Path, region: str, images: int, stale: set[int]) -> None:
    with open(directory / f"backup_{region}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, dialect="excel")
        for n in range(images):
            writer.writerow(row(region, n, n - 1 if n in stale else n))


def run_cli(
    directory: Path, *args: str, one_cpu: bool = False
) -> tuple[tuple[float, float], str]:
    """(wall, CPU) seconds of ``glancesync --offline DIR ARGS`` and its output."""
    (directory / "glancesync.conf").write_text(CONFIG)
    cmd = [str(Path(sys.executable).with_name("glancesync")),
           "--config-file", str(directory / "glancesync.conf"),
           "--offline", str(directory / "regions"), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
    out = directory / "output.txt"
    started = time.monotonic()
    with open(out, "w") as f:
        proc = subprocess.Popen(
            cmd, cwd=directory, env=env, stdout=f, stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
            if one_cpu else None,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)  # its CPU time and its reaped workers'
    elapsed = time.monotonic() - started
    text = out.read_text()
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(args)} failed ({status}): {text[-2000:]}")
    return (elapsed, usage.ru_utime + usage.ru_stime), text


def bench_status(
    directory: Path, args: argparse.Namespace, one_cpu: bool = False
) -> tuple[float, float]:
    regions = directory / "regions"
    regions.mkdir(parents=True)
    write_region(regions, "Master", args.images, set())
    stale = set(range(0, args.images, 10))
    for r in range(args.regions):
        write_region(regions, f"Region{r:02d}", args.images, stale)
    os.sync()  # the files just written go to disk now, not during the timed run
    elapsed, output = run_cli(directory, "--show-status", one_cpu=one_cpu)
    lines = [ln for ln in output.splitlines() if ln.startswith(("ok,", "pending_"))]
    expected = args.images * args.regions
    if len(lines) != expected or sum(ln.startswith("pending_metadata,") for ln in lines) != (
            len(stale) * args.regions):
        raise SystemExit(f"--show-status printed {len(lines)} lines, expected {expected}")
    return elapsed


def bench_updates(directory: Path, args: argparse.Namespace) -> tuple[float, float]:
    regions = directory / "regions"
    regions.mkdir(parents=True)
    write_region(regions, "Master", args.region_images, set())
    step = args.region_images / max(args.updates, 1)
    stale = {int(i * step) for i in range(args.updates)}
    write_region(regions, "Target", args.region_images, stale)
    os.sync()
    elapsed, output = run_cli(directory, "Target")
    done = output.count("Updating the metadata of image")
    _, after = run_cli(directory, "--show-status", "Target")
    not_ok = [ln for ln in after.splitlines() if ln.startswith("pending_")]
    if done != len(stale) or not_ok:
        raise SystemExit(f"sync made {done} updates (expected {len(stale)}); "
                         f"after it: {not_ok[:3]}")
    return elapsed


if __name__ == "__main__":
    sys.exit(main())
