"""The REST API under load: latency of GET /regions/{region} and POST, concurrent requests.

    .venv/bin/python bench/bench_api.py                  # 1,000 images, up to 128 clients
    .venv/bin/python bench/bench_api.py --images 5000 --concurrency 1 8 32

Starts a real ``glancesync-api`` process (one worker, uvicorn) on 127.0.0.1 over offline
regions (backup_<region>.csv files: no cloud, so the figures are the API's and the
engine's own cost, not Glance's) with ``--auth-strategy noauth`` (with Keystone, a token
costs one validation per --token-cache-ttl, then a dictionary look-up):

1. ``GET /regions/Burgos``: a master of N images and a region holding a copy of each
   (one in ten with an older ``nid``: pending_metadata), sequential requests;
2. ``POST /regions/Lisboa`` (a region already in sync): the time to answer the task id,
   and the time until the task is ``synced`` (listing, plan, nothing to write);
3. a bounded load run: C clients at once (each its own keep-alive connection) sending R
   requests each, for GET / and for GET /regions/Burgos; requests per second, latency
   percentiles and errors for each C.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TENANT = "tenant1id"
CONFIG = f"""[main]
master_region = Master

[master]
tenant_id = {TENANT}
metadata_set = nid, type
"""


def row(region: str, n: int, nid: int) -> list[str]:
    """One backup row (the 17 fields --make-backups writes) of image number ``n``."""
    props = repr({"nid": str(nid), "type": "baseimages"})
    return [region, f"image{n:06d}", f"{region}-{n:06d}", "active", str(1024 * (n % 977 + 1)),
            f"{n:032x}", TENANT, "True", props, "sha512", f"{n:0128x}", "qcow2", "bare",
            "0", "0", "False", "False"]  # fmt: skip


def write_region(directory: Path, region: str, images: int, stale_every: int = 0) -> None:
    with open(directory / f"backup_{region}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, dialect="excel")
        for n in range(images):
            stale = stale_every and n % stale_every == 0
            writer.writerow(row(region, n, n - 1 if stale else n))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str) -> tuple[int, bytes]:
        self.conn.request(method, path)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


def percentiles(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return (f"min {ms[0]:7.1f}  median {statistics.median(ms):7.1f}  p95 {p95:7.1f}  "
            f"max {ms[-1]:7.1f} ms")  # fmt: skip


def timed(client: Client, method: str, path: str) -> tuple[float, int, bytes]:
    start = time.perf_counter()
    code, body = client.call(method, path)
    return time.perf_counter() - start, code, body


def load(port: int, path: str, clients: int, each: int) -> str:
    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def worker() -> None:
        client = Client(port)
        mine: list[float] = []
        try:
            barrier.wait(60)
            for _ in range(each):
                elapsed, code, _ = timed(client, "GET", path)
                if code != 200:
                    raise RuntimeError(f"HTTP {code}")
                mine.append(elapsed)
        except Exception as exc:
            with lock:
                errors.append(repr(exc))
        finally:
            client.close()
            with lock:
                times.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    wall = time.perf_counter() - start
    done = len(times)
    rate = done / wall if wall else 0.0
    summary = percentiles(times) if times else "no answer"
    return (f"{clients:4d} clients x {each:3d}: {done:5d} ok, {len(errors):3d} errors, "
            f"{rate:7.1f} req/s; {summary}")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000, help="master images (and region's)")
    ap.add_argument("--requests", type=int, default=30, help="sequential GETs and POSTs")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 128],
                    help="clients at once in the load run")  # fmt: skip
    ap.add_argument("--load-requests", type=int, default=400,
                    help="requests per load level (spread over its clients)")  # fmt: skip
    args = ap.parse_args()
    api = Path(sys.executable).with_name("glancesync-api")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        base = Path(tmp)
        regions = base / "regions"
        regions.mkdir()
        write_region(regions, "Master", args.images)
        write_region(regions, "Burgos", args.images, stale_every=10)
        write_region(regions, "Lisboa", args.images)
        (base / "glancesync.conf").write_text(CONFIG)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
        cmd = [str(api), "--config-file", str(base / "glancesync.conf"), "--offline",
               str(regions), "--auth-strategy", "noauth", "--port", str(port),
               "--database", f"sqlite:///{base / 'tasks.db'}"]  # fmt: skip
        with open(base / "api.log", "wb") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            run(args, port, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        errors = [line for line in (base / "api.log").read_text().splitlines()
                  if "ERROR" in line or "Traceback" in line]  # fmt: skip
        print(f"server log: {len(errors)} error line(s)" + "".join(f"\n  {e}" for e in errors[:5]))
    return 0


def run(args: argparse.Namespace, port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            Client(port).call("GET", "/")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("glancesync-api did not start") from None
            time.sleep(0.1)
    client = Client(port)
    print(f"glancesync-api, 1 worker, offline regions of {args.images} images, noauth")

    gets = []
    for _ in range(args.requests):
        elapsed, code, body = timed(client, "GET", "/regions/Burgos")
        assert code == 200, body
        gets.append(elapsed)
    images = json.loads(body)["images"]
    pending = sum(1 for i in images if i["status"] != "ok")
    print(f"GET /regions/Burgos ({len(images)} images, {pending} pending), "
          f"{args.requests} sequential: {percentiles(gets)}")  # fmt: skip

    posts, syncs = [], []
    for _ in range(args.requests):
        start = time.perf_counter()
        elapsed, code, body = timed(client, "POST", "/regions/Lisboa")
        assert code == 200, body
        posts.append(elapsed)
        task_id = json.loads(body)["taskId"]
        while True:
            code, body = client.call("GET", f"/regions/Lisboa/tasks/{task_id}")
            if json.loads(body)["status"] != "syncing":
                break
            time.sleep(0.005)
        syncs.append(time.perf_counter() - start)
    print(f"POST /regions/Lisboa, answer:          {percentiles(posts)}")
    print(f"POST /regions/Lisboa, until synced:    {percentiles(syncs)}")
    client.close()

    for path in ("/", "/regions/Burgos"):
        total = args.load_requests if path == "/" else max(args.load_requests // 10, 1)
        print(f"load run, GET {path} ({total} requests a level):")
        for clients in args.concurrency:
            print("  " + load(port, path, clients, max(total // clients, 1)))


if __name__ == "__main__":
    sys.exit(main())
