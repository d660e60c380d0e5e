"""Sync throughput against the upload limit and a naive shell loop, on the real test bed.

    .venv/bin/python bench/bench_sync.py                    # 300+150+50+10 MiB
    .venv/bin/python bench/bench_sync.py --sizes 100,20     # MiB per image
    .venv/bin/python bench/bench_sync.py --quick            # 3+2+1 MiB smoke run
    .venv/bin/python bench/bench_sync.py --modes naive,parallel --rounds 3
    .venv/bin/python bench/bench_sync.py --conf main.some_option=value   # to glancesync

Brings up the Keystone + Glance test bed (tests/integration/testbed.py; with
GLANCESYNC_TESTBED_BASE=<dir> it uses a running one instead), creates one public image per
size in Master, then copies exactly those bytes into the same three target regions
(RegionA and RegionB of the master's cloud, RegionC of the second cloud) in each mode:

* ``raw``      -- ``curl -T FILE`` PUT from a local file into each region: the upload
                  limit (nothing is read from Master);
* ``naive``    -- the operator's loop ``curl GET Master | curl -T - PUT target``, one image
                  and region at a time;
* ``default``  -- ``glancesync RegionA RegionB far:RegionC``;
* ``parallel`` -- the same with ``--parallel`` and ``max_children = 3``.

The target regions are emptied before each mode and checked after it (every image active,
with Master's checksum), so every mode moves the same bytes. For each mode it prints the
wall time, the ratio to the naive loop, the master egress in multiples of the selected
bytes (bytes the Master Glance API processes wrote, from their /proc/PID/io ``wchar``:
response bodies plus a few KB of listings) and, for glancesync, its peak RSS (wait4: the
largest single process of the run, forked children included). Prints figures; asserts
nothing. Needs curl, and 5 x the selected bytes of free disk (a local copy of each image,
Master and three regions).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import testbed as tb  # noqa: E402  (stdlib only; the servers live in their own venv)

MiB = 1024 * 1024
MASTER = "Master"
DEFAULT_SIZES = [300, 150, 50, 10]
QUICK_SIZES = [3, 2, 1]
MODES = ["raw", "naive", "default", "parallel"]
# (glancesync's name for it, Glance region, cloud): the same three regions in every mode
TARGETS = [("RegionA", "RegionA", "master"), ("RegionB", "RegionB", "master"),
           ("far:RegionC", "RegionC", "far")]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def main() -> int:
    args = parse_args()
    if not shutil.which("curl"):
        raise SystemExit("bench_sync.py needs curl (the raw and naive modes run it)")
    base = os.environ.get("GLANCESYNC_TESTBED_BASE")
    bed = tb.TestBed.attach(base) if base else tb.TestBed()
    try:
        if not base:
            bed.start()
        with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
            return Bench(bed, args, Path(tmp)).run()
    finally:
        bed.stop()  # an attached bed is left running


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=sizes_arg, default=DEFAULT_SIZES,
                    help="comma-separated image sizes in MiB (default 300,150,50,10)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke run: sizes {','.join(map(str, QUICK_SIZES))} MiB")
    ap.add_argument("--modes", type=modes_arg, default=MODES,
                    help=f"comma-separated subset of {','.join(MODES)} (default all)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every mode this many times; the best time is reported")
    ap.add_argument("--conf", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra glancesync configuration (repeatable), e.g. main.x=y")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes = QUICK_SIZES
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    for item in args.conf:
        section_key, sep, _ = item.partition("=")
        if not sep or "." not in section_key:
            ap.error(f"--conf {item!r}: expected SECTION.KEY=VALUE")
    return args


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected MiB numbers like 300,150") from None
    if not sizes or any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive MiB numbers")
    return sizes


def modes_arg(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"unknown mode(s) {unknown}; choose from {MODES}")
    return [m for m in MODES if m in modes]  # fixed order: naive first gives the ratios


# -- a little Keystone / Glance client (stdlib + curl, like an operator's shell) ----------
@dataclass
class Cloud:
    env: dict[str, str]
    token: str = ""
    project_id: str = ""

    def login(self) -> None:
        env = self.env
        body = {"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": env["OS_USERNAME"], "password": env["OS_PASSWORD"],
                "domain": {"name": env["OS_USER_DOMAIN_NAME"]}}}},
            "scope": {"project": {"name": env["OS_PROJECT_NAME"],
                                  "domain": {"name": env["OS_PROJECT_DOMAIN_NAME"]}}},
        }}
        req = urllib.request.Request(env["OS_AUTH_URL"].rstrip("/") + "/auth/tokens",
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with NO_PROXY.open(req, timeout=60) as r:
            self.token = r.headers["X-Subject-Token"]
            self.project_id = json.loads(r.read())["token"]["project"]["id"]

    def call(self, method: str, url: str, body: dict | None = None) -> Any:
        req = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body else None,
                                     headers={"X-Auth-Token": self.token,
                                              "Content-Type": "application/json"})
        with NO_PROXY.open(req, timeout=120) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def create(self, glance: str, name: str) -> str:
        image = self.call("POST", f"{glance}/v2/images", {
            "name": name, "disk_format": "raw", "container_format": "bare",
            "visibility": "public"})
        return image["id"]

    def images(self, glance: str) -> list[dict]:
        seen: dict[str, dict] = {}
        for query in ("", "&os_hidden=true"):
            for image in self.call("GET", f"{glance}/v2/images?limit=1000{query}")["images"]:
                seen[image["id"]] = image
        return list(seen.values())

    def delete_all(self, glance: str) -> None:
        for image in self.images(glance):
            if image["owner"] != self.project_id:
                continue  # not ours (the bench never makes protected images either)
            try:
                self.call("DELETE", f"{glance}/v2/images/{image['id']}")
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    raise

    def curl(self, *args: str) -> list[str]:
        return ["curl", "--silent", "--show-error", "--fail", "--noproxy", "*",
                "-H", f"X-Auth-Token: {self.token}", *args]

    def put_cmd(self, glance: str, image_id: str, source: str) -> list[str]:
        return self.curl("-H", "Content-Type: application/octet-stream", "-T", source,
                         f"{glance}/v2/images/{image_id}/file")


def run_checked(cmd: list[str], **kwargs: Any) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {proc.stderr}")


# -- the bench ---------------------------------------------------------------------------
class Bench:
    def __init__(self, bed: tb.TestBed, args: argparse.Namespace, tmp: Path) -> None:
        self.bed = bed
        self.args = args
        self.tmp = tmp
        self.clouds = {"master": Cloud(bed.env), "far": Cloud(bed.target_env)}
        for cloud in self.clouds.values():
            cloud.login()
        self.glance = {r: bed.glance_url(r) for r in [MASTER] + [t[1] for t in TARGETS]}
        self.files: dict[str, Path] = {}  # image name -> local copy of its bytes
        self.master_ids: dict[str, str] = {}
        self.checksums: dict[str, str] = {}
        self.selected = sum(args.sizes) * MiB
        state = json.loads((Path(bed.base or ".") / "state.json").read_text())
        self.master_pgid = state["pids"][f"glance-{MASTER}"]

    def run(self) -> int:
        sizes = "+".join(map(str, self.args.sizes))
        print(f"bench_sync: {len(self.args.sizes)} public images of {sizes} MiB "
              f"({self.selected / MiB:.0f} MiB selected) from {MASTER} to "
              f"{', '.join(t[0] for t in TARGETS)}; {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}")
        results: dict[str, list[dict[str, float]]] = {m: [] for m in self.args.modes}
        try:
            self.clean_targets()
            self.clouds["master"].delete_all(self.glance[MASTER])
            self.make_master_images()
            for rnd in range(self.args.rounds):
                for mode in self.args.modes:
                    self.clean_targets()
                    result = getattr(self, f"mode_{mode}")()
                    self.check_targets(mode)
                    results[mode].append(result)
                    print(f"  round {rnd + 1} {mode:9s} {result['wall']:7.1f} s", flush=True)
        finally:
            self.clean_targets()
            self.clouds["master"].delete_all(self.glance[MASTER])
        self.report(results)
        return 0

    # -- set-up and checks
    def make_master_images(self) -> None:
        cloud = self.clouds["master"]
        started = time.monotonic()
        for n, size_mib in enumerate(self.args.sizes):
            name = f"bench-{n}-{size_mib}MiB"
            path = self.tmp / name
            write_data(path, size_mib * MiB, seed=n)
            image_id = cloud.create(self.glance[MASTER], name)
            run_checked(cloud.put_cmd(self.glance[MASTER], image_id, str(path)))
            image = cloud.call("GET", f"{self.glance[MASTER]}/v2/images/{image_id}")
            self.files[name], self.master_ids[name] = path, image_id
            self.checksums[name] = image["checksum"]
        print(f"  images created in {MASTER} in {time.monotonic() - started:.1f} s")

    def clean_targets(self) -> None:
        for _, region, cloud in TARGETS:
            self.clouds[cloud].delete_all(self.glance[region])

    def check_targets(self, mode: str) -> None:
        """Every mode must leave the same images, else its figures mean nothing."""
        for _, region, cloud in TARGETS:
            found = {i["name"]: i for i in self.clouds[cloud].images(self.glance[region])}
            for name, checksum in self.checksums.items():
                image = found.get(name)
                if not image or image["status"] != "active" or image["checksum"] != checksum:
                    state = image and (image["status"], image["checksum"])
                    raise SystemExit(f"{mode}: {region} has no good copy of {name} ({state})")

    def egress_counter(self) -> int:
        """Bytes written so far by the Master Glance API processes (sockets, logs, db)."""
        total = 0
        for pid in tb._pgroup_members(self.master_pgid):
            try:
                text = Path(f"/proc/{pid}/io").read_text()
            except OSError:
                continue
            total += int(text.split("wchar:")[1].split()[0])
        return total

    # -- the modes
    def mode_raw(self) -> dict[str, float]:
        def work() -> None:
            for _, region, cloud in TARGETS:
                for name, path in self.files.items():
                    c = self.clouds[cloud]
                    image_id = c.create(self.glance[region], name)
                    run_checked(c.put_cmd(self.glance[region], image_id, str(path)))
        return self.measure(work)

    def mode_naive(self) -> dict[str, float]:
        master = self.clouds["master"]

        def work() -> None:
            for name, master_id in self.master_ids.items():
                for _, region, cloud in TARGETS:
                    c = self.clouds[cloud]
                    image_id = c.create(self.glance[region], name)
                    get = subprocess.Popen(
                        master.curl(f"{self.glance[MASTER]}/v2/images/{master_id}/file"),
                        stdout=subprocess.PIPE)
                    put = subprocess.run(c.put_cmd(self.glance[region], image_id, "-"),
                                         stdin=get.stdout, capture_output=True, text=True)
                    assert get.stdout is not None
                    get.stdout.close()
                    if get.wait() or put.returncode:
                        raise SystemExit(f"naive: {name} -> {region} failed: {put.stderr}")
        return self.measure(work)

    def mode_default(self) -> dict[str, float]:
        return self.glancesync([])

    def mode_parallel(self) -> dict[str, float]:
        return self.glancesync(["--parallel"], {"main.max_children": "3"})

    def glancesync(self, options: list[str], conf: dict[str, str] | None = None
                   ) -> dict[str, float]:
        work = self.tmp / "run"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        config = work / "glancesync.conf"
        config.write_text(self.config_text({**(conf or {}), **dict(
            c.split("=", 1) for c in self.args.conf)}))
        cmd = [str(Path(sys.executable).with_name("glancesync")), "--config-file", str(config),
               *options, *(t[0] for t in TARGETS)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
        env["GLANCESYNC_LOCK_FILE"] = str(work / "lock")
        usage: dict[str, Any] = {}

        def run() -> None:
            with open(work / "output.txt", "w") as out:
                proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out,
                                        stderr=subprocess.STDOUT)
                _, status, ru = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            usage["maxrss"] = ru.ru_maxrss * 1024
            usage["cpu"] = ru.ru_utime + ru.ru_stime
            if proc.returncode:
                tail = "\n".join((work / "output.txt").read_text().splitlines()[-15:])
                raise SystemExit(f"glancesync {' '.join(options)} failed "
                                 f"(exit {proc.returncode}):\n{tail}")
        return {**self.measure(run), **usage}

    def config_text(self, extra: dict[str, str]) -> str:
        env, far = self.bed.env, self.bed.target_env
        password = base64.b64encode(env["OS_PASSWORD"].encode()).decode()
        sections: dict[str, dict[str, str]] = {
            "main": {"master_region": MASTER},
            "master": {"credential": f"{env['OS_USERNAME']},{password},"
                                     f"{env['OS_AUTH_URL']},{env['OS_PROJECT_NAME']}"},
            "far": {"user": far["OS_USERNAME"], "password": far["OS_PASSWORD"],
                    "keystone_url": far["OS_AUTH_URL"], "tenant": far["OS_PROJECT_NAME"]},
        }
        for key, value in extra.items():
            section, _, option = key.partition(".")
            sections.setdefault(section, {})[option] = value
        return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in opts.items())
                       for name, opts in sections.items())

    def measure(self, work: Any) -> dict[str, float]:
        before = self.egress_counter()
        started = time.monotonic()
        work()
        wall = time.monotonic() - started
        return {"wall": wall, "egress": (self.egress_counter() - before) / self.selected}

    # -- output
    def report(self, results: dict[str, list[dict[str, float]]]) -> None:
        best = {m: min(rs, key=lambda r: r["wall"]) for m, rs in results.items() if rs}
        naive = best.get("naive")
        moved = self.selected * len(TARGETS)
        rounds = f", best of {self.args.rounds}" if self.args.rounds > 1 else ""
        print(f"\nresults ({moved / MiB:.0f} MiB written into {len(TARGETS)} regions{rounds}):")
        print(f"  {'mode':9s} {'wall s':>8s} {'vs naive':>9s} {'MB/s':>7s} "
              f"{'egress':>8s} {'peak RSS':>9s} {'CPU s':>6s}")
        for mode, r in best.items():
            ratio = f"{r['wall'] / naive['wall']:8.2f}x" if naive else f"{'-':>9s}"
            rss = f"{r['maxrss'] / 1e6:7.1f}MB" if "maxrss" in r else f"{'-':>9s}"
            cpu = f"{r['cpu']:6.1f}" if "cpu" in r else f"{'-':>6s}"
            spread = ""
            if len(results[mode]) > 1:
                walls = [x["wall"] for x in results[mode]]
                spread = f"  (median {statistics.median(walls):.1f} s)"
            print(f"  {mode:9s} {r['wall']:8.1f} {ratio} {moved / 1e6 / r['wall']:7.1f} "
                  f"{r['egress']:7.2f}x {rss} {cpu}{spread}")
        print("  egress: bytes written by the Master Glance API / selected bytes "
              f"({self.selected / MiB:.0f} MiB)")


def write_data(path: Path, size: int, seed: int) -> None:
    """``size`` bytes, distinct per seed (1 MiB of random bytes, each copy numbered)."""
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        written, number = 0, 0
        while written < size:
            chunk = (seed.to_bytes(4, "big") + number.to_bytes(8, "big") + block[12:])
            chunk = chunk[: size - written]
            f.write(chunk)
            written += len(chunk)
            number += 1


if __name__ == "__main__":
    sys.exit(main())
