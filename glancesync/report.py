"""What a run did, for people (the summary lines) and machines (JSON report, metrics).

Everything is built from the runner's RegionResult list. The JSON shapes are described
by ``output.schema.json`` next to this module; the metrics file is in the Prometheus text
exposition format, for node_exporter's textfile collector.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from glancesync import __version__
from glancesync.executor import RegionResult
from glancesync.units import format_duration, format_rate, format_size

log = logging.getLogger("glancesync")

SYNCHRONIZED = "synchronized"
PENDING = "pending"  # dry run: a sync would change something
NEEDS_OPERATOR = "needs_operator"
FAILED = "failed"
INTERRUPTED = "interrupted"

COUNTERS = ("uploaded", "replaced", "renamed", "metadata_updated", "failed")


@dataclass
class Run:
    """One sync or dry run: what the summary, the report and the metrics describe."""

    dry_run: bool
    master_region: str
    started: float = field(default_factory=time.time)  # Unix time
    finished: float = 0.0
    results: list[RegionResult] = field(default_factory=list)
    exit_code: int = 0
    log_dir: str | None = None
    error: str | None = None  # why the run stopped before its end (the master unlisted...)

    @property
    def elapsed(self) -> float:
        return max(0.0, (self.finished or time.time()) - self.started)


def region_status(result: RegionResult, dry_run: bool) -> str:
    if result.interrupted:
        return INTERRUPTED
    if result.failed:
        return FAILED
    if dry_run and result.has_work:
        return PENDING
    if result.needs_operator:
        return NEEDS_OPERATOR
    return SYNCHRONIZED


def counts(result: RegionResult) -> dict[str, int]:
    return {
        "uploaded": result.uploaded,
        "replaced": result.replaced,
        "renamed": result.renamed,
        "metadata_updated": result.metadata_updates,
        "failed": len(result.failures),
    }


def _sum(results: Iterable[RegionResult]) -> dict[str, int]:
    total = dict.fromkeys(COUNTERS, 0)
    for result in results:
        for key, value in counts(result).items():
            total[key] += value
    return total


# -- the summary at the end of a run ---------------------------------------------------
def _describe(numbers: dict[str, int], size: int, seconds: float, dry_run: bool) -> str:
    if dry_run:
        return (
            f"to upload {numbers['uploaded']}, to replace {numbers['replaced']}, to rename "
            f"{numbers['renamed']}, metadata to update {numbers['metadata_updated']}; "
            f"{format_size(size)} to transfer"
        )
    return (
        f"uploaded {numbers['uploaded']}, replaced {numbers['replaced']}, renamed "
        f"{numbers['renamed']}, metadata updated {numbers['metadata_updated']}, failed "
        f"{numbers['failed']}; {format_size(size)} in {format_duration(seconds)} "
        f"({format_rate(size, seconds)})"
    )


_STATUS_WORDS = {
    SYNCHRONIZED: "synchronized",
    PENDING: "work pending",
    NEEDS_OPERATOR: "needs the operator",
    FAILED: "FAILED",
    INTERRUPTED: "INTERRUPTED",
}


def log_summary(run: Run) -> None:
    """``======Summary`` then one line per region and a ``Total`` line (the log's last)."""
    log.info("======Summary" + (" (dry run: nothing was changed)" if run.dry_run else ""))
    problems = 0
    for result in run.results:
        status = region_status(result, run.dry_run)
        words = _STATUS_WORDS[status]
        if status in (FAILED, INTERRUPTED) and result.error:
            words += f" ({result.error})"
        elif status == NEEDS_OPERATOR:
            words += f" ({', '.join(result.needs_operator)})"
        # "other:" is a whole target that could not be reached (its regions unknown).
        label = f"target {result.region[:-1]}" if result.region.endswith(":") else result.region
        line = (
            f"{label}: {words}; "
            + _describe(counts(result), result.uploaded_bytes, result.elapsed, run.dry_run)
        )
        if status in (FAILED, INTERRUPTED, NEEDS_OPERATOR):
            problems += 1
            log.warning(line)
        else:
            log.info(line)
    failed = sum(1 for r in run.results if r.failed)
    operator = sum(1 for r in run.results if not r.failed and r.needs_operator)
    size = sum(r.uploaded_bytes for r in run.results)
    regions = f"{len(run.results)} region{'s' if len(run.results) != 1 else ''}"
    parts = []
    if failed:
        parts.append(f"{failed} failed")
    if operator:
        parts.append(f"{operator} need{'s' if operator == 1 else ''} the operator")
    notes = ", ".join(parts)
    line = f"Total: {regions}" + (f" ({notes})" if notes else "") + "; "
    line += _describe(_sum(run.results), size, run.elapsed, run.dry_run)
    (log.warning if problems else log.info)(line)


# -- JSON --------------------------------------------------------------------------------
def iso(timestamp: float) -> str:
    """Local time with its UTC offset: ``2026-12-02T02:30:01+01:00``."""
    text = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(timestamp))
    return f"{text[:-2]}:{text[-2:]}"


def region_dict(result: RegionResult, dry_run: bool) -> dict[str, Any]:
    return {
        "region": result.region,
        "status": region_status(result, dry_run),
        **counts(result),
        "bytes": result.uploaded_bytes,
        "elapsed_seconds": round(result.elapsed, 3),
        "bytes_per_second": _rate(result.uploaded_bytes, result.elapsed),
        "error": result.error or None,
        "failures": list(result.failures),
        "needs_operator": list(result.needs_operator),
        "operations": list(result.operations),
    }


def _rate(size: int, seconds: float) -> float | None:
    return round(size / seconds, 1) if seconds > 0 else None


def run_report(run: Run) -> dict[str, Any]:
    """The JSON document of a sync (``--format json``, ``--report``)."""
    size = sum(r.uploaded_bytes for r in run.results)
    return {
        "kind": "run",
        "glancesync_version": __version__,
        "dry_run": run.dry_run,
        "master_region": run.master_region,
        "started": iso(run.started),
        "finished": iso(run.finished or time.time()),
        "elapsed_seconds": round(run.elapsed, 3),
        "exit_code": run.exit_code,
        "log_dir": run.log_dir,
        "error": run.error,
        "regions": [region_dict(r, run.dry_run) for r in run.results],
        "totals": {
            "regions": len(run.results),
            "failed_regions": sum(1 for r in run.results if r.failed),
            "regions_needing_operator": sum(
                1 for r in run.results if not r.failed and r.needs_operator
            ),
            **_sum(run.results),
            "bytes": size,
            "bytes_per_second": _rate(size, run.elapsed),
        },
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` by ``text`` at once: a reader (node_exporter, a monitoring script)
    sees the old file or the new one, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# -- Prometheus textfile ------------------------------------------------------------------
_LAST_SUCCESS = "glancesync_last_success_timestamp_seconds"


def previous_success(path: str) -> float | None:
    """The last success time recorded in an existing metrics file (kept across failures)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    match = re.search(rf"^{_LAST_SUCCESS} (\S+)$", text, re.MULTILINE)
    try:
        return float(match.group(1)) if match else None
    except ValueError:
        return None


def succeeded(run: Run) -> bool:
    """No region failed and the run was not interrupted (images needing the operator do
    not make a run fail: everything else was synchronised)."""
    return not any(r.failed or r.interrupted for r in run.results) and run.exit_code in (0, 3)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metrics_text(run: Run, last_success: float | None) -> str:
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {_number(value)}")

    finished = run.finished or time.time()
    if succeeded(run):
        last_success = finished
    metric("glancesync_last_run_timestamp_seconds", "gauge",
           "When the last glancesync run finished (Unix time).", [("", finished)])
    if last_success is not None:
        metric(_LAST_SUCCESS, "gauge",
               "When the last glancesync run in which no region failed finished (Unix time).",
               [("", last_success)])
    metric("glancesync_last_run_success", "gauge",
           "1 if no region failed in the last run, else 0.", [("", float(succeeded(run)))])
    metric("glancesync_last_run_exit_code", "gauge", "Exit code of the last run.",
           [("", run.exit_code)])
    metric("glancesync_last_run_duration_seconds", "gauge", "Duration of the last run.",
           [("", run.elapsed)])
    metric("glancesync_last_run_bytes", "gauge", "Bytes uploaded by the last run.",
           [("", sum(r.uploaded_bytes for r in run.results))])
    regions = [(f'{{region="{_label(r.region)}"}}', r) for r in run.results]
    metric("glancesync_region_success", "gauge",
           "1 if the region did not fail in the last run, else 0.",
           [(labels, float(not (r.failed or r.interrupted))) for labels, r in regions])
    metric("glancesync_region_images_needing_operator", "gauge",
           "Images the operator must act on (error_* statuses), per region.",
           [(labels, len(r.needs_operator)) for labels, r in regions])
    samples = []
    for labels, r in regions:
        for kind, value in counts(r).items():
            samples.append((labels[:-1] + f',result="{kind}"}}', value))
    metric("glancesync_region_images", "gauge",
           "Images per result (uploaded, replaced, renamed, metadata_updated, failed) in "
           "the last run, per region.", samples)
    metric("glancesync_region_bytes", "gauge", "Bytes uploaded to the region in the last run.",
           [(labels, r.uploaded_bytes) for labels, r in regions])
    metric("glancesync_region_duration_seconds", "gauge",
           "Duration of the region's sync in the last run.",
           [(labels, r.elapsed) for labels, r in regions])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(round(float(value), 3))
