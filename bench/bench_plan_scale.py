"""Planning scale: time and memory to plan one region with many images (no I/O).

    .venv/bin/python bench/bench_plan_scale.py [N_MASTER_IMAGES] [N_REGION_IMAGES]

Prints figures; asserts nothing (timings are noisy here, they are read, not tested).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glancesync.config import TargetConfig  # noqa: E402
from glancesync.image import Image  # noqa: E402
from glancesync.plan import plan_region  # noqa: E402
from glancesync.selection import master_images  # noqa: E402

TENANT = "tenant1id"


def make_images(n_master: int, n_region: int) -> tuple[list[Image], list[Image]]:
    master = [
        Image(
            id=f"m{i}",
            name=f"image{i:06d}",
            region="Master",
            owner=TENANT,
            checksum=f"c{i}",
            size=1024 * (i % 977),
            properties={"type": "base", "nid": str(i), "sdc_aware": "true"},
        )
        for i in range(n_master)
    ]
    # Every third image missing, every fifth with other metadata, every seventh changed.
    region = []
    for i, m in enumerate(master[:n_region]):
        if i % 3 == 0:
            continue
        props = dict(m.properties, nid="x") if i % 5 == 0 else dict(m.properties)
        checksum = "old" if i % 7 == 0 else m.checksum
        region.append(m.copy(id=f"d{i}", region="Burgos", properties=props, checksum=checksum))
    return master, region


def main() -> None:
    n_master = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    n_region = int(sys.argv[2]) if len(sys.argv) > 2 else n_master
    master_list, region = make_images(n_master, n_region)
    target = TargetConfig(
        "master", metadata_set=frozenset({"nid", "type"}), rename=frozenset({"old"})
    )

    def run():
        master, _ = master_images(master_list, TENANT)
        plan = plan_region("Burgos", master, region, target, TENANT)
        return plan, plan.upload_order()

    t0 = time.perf_counter()
    plan, order = run()
    elapsed = time.perf_counter() - t0
    tracemalloc.start()  # second run: tracing slows it down, so it is not the timed one
    run()
    _, peak = tracemalloc.get_traced_memory()
    counts: dict[str, int] = {}
    for p in plan.images:
        counts[p.status] = counts.get(p.status, 0) + 1
    print(f"master images: {n_master}, region images: {len(region)}")
    print(f"plan + upload order: {elapsed * 1000:.1f} ms")
    print(f"peak traced memory: {peak / 2**20:.1f} MiB")
    print(f"content work items: {len(order)}; statuses: {dict(sorted(counts.items()))}")


if __name__ == "__main__":
    main()
