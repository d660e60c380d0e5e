"""What each injected fault leaves in each Glance, after the faulty run and after a rerun.

    .venv/bin/python bench/fault_table.py [CASE ...]      # default: every case
    GLANCESYNC_TESTBED_BASE=<dir> .venv/bin/python bench/fault_table.py   # a running bed

Runs the fault cases of the integration suite (tests/integration/faultcases.py: 5xx on
create/upload/patch/delete/list, a stalled listing, a flipped byte, a dropped or lost
connection, SIGTERM/SIGINT mid-upload and mid-swap, a glance-api killed mid-upload) on
the Keystone + Glance test bed (started here unless GLANCESYNC_TESTBED_BASE names a
running one), and prints a Markdown table: per fault, the exit code, whether a wrong image
was ever active, and what each region held (name, status, visibility, hidden, marked as a
temporary copy, whose bytes) after the faulty run and after the rerun, then the rerun's
``--show-status``. Master holds alpha and beta; RegionA is behind the fault proxy.
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))

import faultcases  # noqa: E402
import testbed as tb  # noqa: E402
from conftest import TestBedFixture  # noqa: E402


def cell(rows: list[faultcases.Row], known: dict[str | None, str]) -> str:
    return "<br>".join(r.text(known) for r in rows) or "(nothing)"


def caught(outcome: faultcases.Outcome) -> str:
    n = len(outcome.caught_in_db)
    if not n:
        return ""
    # rows read "name id (status, visibility) md5 ..."
    statuses = sorted({row.split("(", 1)[1].split(",", 1)[0] for row in outcome.caught_in_db})
    return (f" ({n} hidden marked temporary cop{'y' if n == 1 else 'ies'} with wrong bytes, "
            f"now {'/'.join(statuses)})")


def status_summary(outcome: faultcases.Outcome) -> str:
    lines = outcome.status.stdout.splitlines()
    oks = sum(1 for line in lines if line.startswith("ok,"))
    return f"{oks}/{len(lines)} ok" + ("" if oks == len(lines) else f": {lines}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all): "
                    + ", ".join(c.name for c in faultcases.CASES))
    args = ap.parse_args()
    cases = [c for c in faultcases.CASES if not args.cases or c.name in args.cases]
    unknown = set(args.cases) - {c.name for c in cases}
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")

    base = os.environ.get("GLANCESYNC_TESTBED_BASE")
    bed = tb.TestBed.attach(base) if base else tb.TestBed()
    try:
        if not base:
            bed.start()
        fixture = TestBedFixture(bed)
        fixture.delete_all_images()
        faults = faultcases.FaultBed(fixture, Path(tempfile.mkdtemp(prefix="fault-table-")))
        try:
            faults.ensure_master()
            print_table(faults, cases)
        finally:
            faults.close()
            fixture.delete_all_images()
    finally:
        bed.stop()
    return 0


def print_table(faults: faultcases.FaultBed, cases: list[faultcases.Case]) -> None:
    known = {k: ("master " + v if v in faultcases.MASTER_IMAGES else v)
             for k, v in faults.checksums.items()}
    print("| fault | exit (documented) | wrong image active | region "
          "| left after the faulty run | after the rerun |")
    print("|---|---|---|---|---|---|")
    totals = {"cases": 0, "exit as documented": 0, "wrong active": 0, "converged": 0}
    t0 = time.monotonic()
    for case in cases:
        outcome = faults.run_case(case)
        wrong = len(outcome.wrong_active) + len(outcome.wrong_in_db)
        converged = (outcome.rerun.returncode == 0 and outcome.status.returncode == 0
                     and all(line.startswith("ok,") for line in outcome.status.stdout.split()))
        totals["cases"] += 1
        totals["exit as documented"] += outcome.run.returncode == case.exit_code
        totals["wrong active"] += wrong > 0
        totals["converged"] += converged
        leftovers = "Deleting leftover image" in outcome.rerun.stdout + outcome.rerun.stderr
        for i, region in enumerate(outcome.after):
            first = i == 0
            print("| " + " | ".join([
                f"{case.name}: {case.what}" if first else "",
                f"{outcome.run.returncode} ({case.exit_code})" if first else "",
                ("yes: " + "; ".join(outcome.wrong_active + outcome.wrong_in_db)
                 if wrong else "no" + caught(outcome)) if first else "",
                region,
                cell(outcome.after[region], known),
                cell(outcome.final[region], known),
            ]) + " |")
        note = (f"rerun exit {outcome.rerun.returncode}, "
                f"{'deleted marked leftovers, ' if leftovers else ''}"
                f"status {status_summary(outcome)}")
        print(f"| | | | (rerun) | | {note} |")
        sys.stdout.flush()
    print()
    print(f"{totals['cases']} faults in {time.monotonic() - t0:.0f} s: "
          f"{totals['exit as documented']} exited as documented, "
          f"{totals['wrong active']} with a wrong image active, "
          f"{totals['converged']} converged to all ok on the rerun")


if __name__ == "__main__":
    sys.exit(main())
