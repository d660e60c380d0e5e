"""Machine outputs: --format json in every mode (checked against output.schema.json),
--report, the Prometheus --metrics-file, --detailed-exitcode, the run summary, the region
list of a run and the one unit convention."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import test_cli
from prometheus_client.parser import text_string_to_metric_families
from test_cli import CONFIG, gs, image, logs, run_cli, run_main

import glancesync
from glancesync.backup import write_csv_atomic
from glancesync.units import format_duration, format_rate, format_size

fed = test_cli.fed  # the offline federation of test_cli

SCHEMA = json.loads(
    (Path(glancesync.__file__).parent / "output.schema.json").read_text(encoding="utf-8")
)


def valid(text: str) -> dict:
    document = json.loads(text)
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    return document


def metrics(path: Path) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, through prometheus_client's own parser."""
    samples = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


# -- units -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (500_000, "488.3 KiB"),
        (200_000_000, "190.7 MiB"), (1073741824, "1.0 GiB"), (1073741824 - 1, "1.0 GiB"),
        (3 * 1024**4, "3.0 TiB"),
    ],
)  # fmt: skip
def test_sizes_are_iec_with_the_unit_written(size, text):
    assert format_size(size) == text


def test_rates_and_durations():
    assert format_rate(200_000_000, 10) == "19.1 MiB/s"
    assert format_rate(5, 0) == "-"
    assert [format_duration(s) for s in (0.04, 59.94, 125, 3725)] == [
        "0.0 s", "59.9 s", "2 min 05 s", "1 h 02 min",
    ]  # fmt: skip


def test_a_job_under_a_mib_does_not_say_zero(fed, capsys):
    tiny = [image("Valladolid", "tiny", "tiny-bytes", 500_000)]
    write_csv_atomic(str(fed / "regions" / "backup_Valladolid.csv"), [i.to_csv_row() for i in tiny])
    code, _, err = run_main(capsys, *gs(fed, "--dry-run", "Burgos"))
    assert code == 0
    assert "INFO:Burgos: Pending: tiny (488.3 KiB)" in err
    assert "INFO:Burgos: Work pending: 488.3 KiB to upload (1 image), 0 metadata updates" in err
    code, _, err = run_main(capsys, *gs(fed, "Burgos"))
    assert "INFO:Burgos: Total uploaded to region: 488.3 KiB (1 image) in " in err


# -- the summary at the end of every run -------------------------------------------------------


def test_a_sync_ends_with_a_summary_per_region_and_in_total(fed, capsys):
    code, _, err = run_main(capsys, *gs(fed, "master:", "other:"))
    assert code == 3
    lines = err.splitlines()
    start = lines.index("INFO:======Summary")
    summary = lines[start + 1 :]
    assert [line.split(";")[0] for line in summary] == [
        "WARNING:Caceres: needs the operator (base_debian_12 (error_checksum))",
        "INFO:Burgos: synchronized",
        "INFO:other:Madrid: synchronized",
        "WARNING:Total: 3 regions (1 needs the operator)",
    ]
    assert re.fullmatch(
        r"INFO:Burgos: synchronized; uploaded 2, replaced 0, renamed 0, metadata updated 0, "
        r"failed 0; 1\.0 GiB in \d+\.\d s \(([\d.]+ [KMGT]?i?B/s|-)\)",
        summary[1],
    ), summary[1]
    assert summary[3].startswith(
        "WARNING:Total: 3 regions (1 needs the operator); uploaded 4, replaced 0, renamed 0, "
        "metadata updated 0, failed 0; 2.0 GiB in "
    )


def test_parallel_ends_with_the_summary_of_every_child(fed):
    (fed / "regions" / "backup_Caceres.csv").write_text("Caceres,only,three\r\n")
    process = run_cli(fed, *gs(fed, "--parallel", "Caceres", "Burgos", "other:Madrid"))
    assert process.returncode == 2  # a malformed backup file: no retry can fix it
    lines = logs(process.stderr).splitlines()
    summary = lines[lines.index("INFO:======Summary") + 1 :]
    assert summary[0].startswith("WARNING:Caceres: FAILED (Caceres: ")
    assert summary[1].startswith("INFO:Burgos: synchronized; uploaded 2, ")
    assert summary[2].startswith("INFO:other:Madrid: synchronized; uploaded 2, ")
    assert summary[3].startswith("WARNING:Total: 3 regions (1 failed); uploaded 4, ")
    assert lines[-1] == summary[3]


# -- --format json in every mode -----------------------------------------------------------------


def test_status_json_is_valid_and_says_whether_work_is_pending(fed, capsys):
    code, out, _ = run_main(capsys, *gs(fed, "--show-status", "--format", "json", "Burgos"))
    assert code == 0
    document = valid(out)
    assert (document["kind"], document["pending"]) == ("status", True)


def test_regions_json(fed, capsys):
    code, out, _ = run_main(capsys, *gs(fed, "--show-regions", "--format", "json"))
    assert code == 0
    assert valid(out) == {
        "kind": "regions",
        "master_region": "Valladolid",
        "regions": ["Caceres", "Burgos"],
        "other_regions": ["other:Madrid"],
    }


def test_backup_json(fed, capsys):
    code, out, _ = run_main(capsys, *gs(fed, "--make-backups", "--format", "json", "Burgos"))
    assert code == 0
    document = valid(out)
    [directory] = fed.glob("backup_glance_*")
    assert document == {"kind": "backup", "directory": str(directory), "exit_code": 0}


@pytest.mark.parametrize("parallel", [[], ["--parallel"]])
def test_dry_run_json_is_the_plan_and_writes_nothing(fed, capsys, parallel):
    before = test_cli.snapshot(fed / "regions")
    args = gs(fed, *parallel, "--dry-run", "--format", "json", "Caceres", "Burgos")
    if parallel:
        process = run_cli(fed, *args)
        code, out = process.returncode, process.stdout
    else:
        code, out, _ = run_main(capsys, *args)
    assert code == 3
    document = valid(out)
    assert test_cli.snapshot(fed / "regions") == before
    assert (document["dry_run"], document["exit_code"]) == (True, 3)
    caceres, burgos = document["regions"]
    assert (caceres["region"], caceres["status"]) == ("Caceres", "needs_operator")
    assert caceres["needs_operator"] == ["base_debian_12 (error_checksum)"]
    assert (burgos["region"], burgos["status"], burgos["uploaded"]) == ("Burgos", "pending", 2)
    assert [(op["operation"], op["image"]) for op in burgos["operations"]] == [
        ("upload", "cirros"),
        ("upload", "base_debian_12"),
    ]
    assert burgos["bytes"] == 13267968 + 1073741824
    assert document["totals"]["uploaded"] == 2
    assert (document["log_dir"] is not None) == bool(parallel)


def test_sync_json_on_stdout_and_in_report_file(fed, capsys):
    report = fed / "reports" / "last.json"
    report.parent.mkdir()
    code, out, err = run_main(
        capsys, *gs(fed, "--format", "json", "--report", str(report), "Burgos", "other:Madrid")
    )
    assert code == 0
    document = valid(out)
    assert valid(report.read_text()) == document
    assert list(report.parent.iterdir()) == [report]  # no temporary file left behind
    assert f"INFO:Wrote the report {report}" in err
    assert document["dry_run"] is False
    rows = [(r["region"], r["status"], r["uploaded"], r["failed"]) for r in document["regions"]]
    assert rows == [
        ("Burgos", "synchronized", 2, 0),
        ("other:Madrid", "synchronized", 2, 0),
    ]
    assert document["totals"]["bytes"] == 2 * (13267968 + 1073741824)
    assert document["error"] is None


def test_report_of_a_run_that_stopped_says_why(fed, capsys):
    (fed / "regions" / "backup_Valladolid.csv").write_text("Valladolid,broken\r\n")
    report = fed / "report.json"
    code, _, _ = run_main(capsys, *gs(fed, "--report", str(report), "Burgos"))
    assert code == 2  # a malformed backup file: no retry can fix it
    document = valid(report.read_text())
    assert document["exit_code"] == 2
    assert "backup_Valladolid.csv, line 1" in document["error"]


# -- Prometheus textfile ---------------------------------------------------------------------


def test_metrics_file_for_node_exporter(fed, capsys):
    path = fed / "glancesync.prom"
    code, _, _ = run_main(capsys, *gs(fed, "--metrics-file", str(path), "master:"))
    assert code == 3  # Caceres needs the operator: still a run in which no region failed
    m = metrics(path)
    success = m[("glancesync_last_success_timestamp_seconds", ())]
    assert success == m[("glancesync_last_run_timestamp_seconds", ())] > 1.7e9
    assert m[("glancesync_last_run_success", ())] == 1
    assert m[("glancesync_last_run_exit_code", ())] == 3
    assert m[("glancesync_region_success", (("region", "Burgos"),))] == 1
    assert m[("glancesync_region_images_needing_operator", (("region", "Caceres"),))] == 1
    assert m[("glancesync_region_images", (("region", "Burgos"), ("result", "uploaded")))] == 2
    assert m[("glancesync_region_bytes", (("region", "Burgos"),))] == 13267968 + 1073741824
    assert m[("glancesync_region_duration_seconds", (("region", "Burgos"),))] >= 0
    assert m[("glancesync_last_run_duration_seconds", ())] >= 0
    assert [p.name for p in fed.iterdir() if p.name.startswith(".glancesync.prom")] == []

    # A failing run keeps the last success time and says which region failed.
    (fed / "regions" / "backup_Burgos.csv").write_text("Burgos,x\r\n")
    code, _, _ = run_main(capsys, *gs(fed, "--metrics-file", str(path), "master:"))
    assert code == 2  # a malformed backup file
    m = metrics(path)
    assert m[("glancesync_last_success_timestamp_seconds", ())] == success
    assert m[("glancesync_last_run_success", ())] == 0
    assert m[("glancesync_region_success", (("region", "Burgos"),))] == 0
    assert m[("glancesync_region_success", (("region", "Caceres"),))] == 1


def test_a_first_failing_run_has_no_last_success(fed, capsys):
    path = fed / "glancesync.prom"
    (fed / "regions" / "backup_Burgos.csv").write_text("Burgos,x\r\n")
    assert run_main(capsys, *gs(fed, "--metrics-file", str(path), "Burgos"))[0] == 2
    names = {name for name, _ in metrics(path)}
    assert "glancesync_last_success_timestamp_seconds" not in names
    assert "glancesync_last_run_timestamp_seconds" in names


# -- --detailed-exitcode ---------------------------------------------------------------------


def test_detailed_exitcode_tells_pending_work_apart(fed, capsys):
    for mode in ("--show-status", "--dry-run"):
        assert run_main(capsys, *gs(fed, mode, "--detailed-exitcode", "Burgos"))[0] == 4
        assert run_main(capsys, *gs(fed, mode, "Burgos"))[0] == 0  # without: as before
    assert run_main(capsys, *gs(fed, "Burgos", "Caceres"))[0] == 3
    for mode in ("--show-status", "--dry-run"):
        assert run_main(capsys, *gs(fed, mode, "--detailed-exitcode", "Burgos"))[0] == 0
        # Only an image the operator must act on: 3, as without the option.
        assert run_main(capsys, *gs(fed, mode, "--detailed-exitcode", "Caceres"))[0] == 3


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--detailed-exitcode"], "--detailed-exitcode applies to --show-status and --dry-run"),
        (["--metrics-file", "m.prom", "--dry-run"], "--metrics-file applies to a sync only"),
        (["--metrics-file", "m.prom", "--show-status"], "--metrics-file applies to a sync"),
        (["--report", "r.json", "--show-regions"], "--report applies to a sync or a --dry-run"),
    ],
)
def test_options_that_mean_nothing_in_the_mode_are_refused(fed, capsys, args, words):
    code, out, err = run_main(capsys, *gs(fed, *args, "Burgos"))
    assert (code, out) == (2, "")
    assert err.startswith(f"ERROR:{words}")
    assert not (fed / "m.prom").exists() and not (fed / "r.json").exists()


# -- the region list of a run -------------------------------------------------------------------


def test_preferable_order_brings_in_regions_of_other_targets(fed, capsys):
    conf = fed / "preferred.conf"
    order = "preferable_order = other:Madrid, Caceres"
    conf.write_text(CONFIG.replace("preferable_order = Caceres", order))
    args = ["--config-file", str(conf), "--offline", str(fed / "regions")]
    code, out, _ = run_main(capsys, *args, "--show-regions")
    assert (code, out) == (0, "other:Madrid Caceres Burgos\n")
    code, _, err = run_main(capsys, *args)
    assert code == 3
    headers = [line for line in err.splitlines() if line.startswith("INFO:======")]
    assert headers[1:4] == ["INFO:======other:Madrid", "INFO:======Caceres", "INFO:======Burgos"]
    assert test_cli.names(fed, "other:Madrid") == ["base_debian_12", "cirros"]


def test_preferable_order_naming_an_unknown_region_is_a_warning(fed, capsys):
    conf = fed / "preferred.conf"
    conf.write_text(CONFIG.replace("preferable_order = Caceres", "preferable_order = other:X"))
    code, out, err = run_main(
        capsys, "--config-file", str(conf), "--offline", str(fed / "regions"), "--show-regions"
    )
    assert (code, out) == (0, "Burgos Caceres\n")
    assert "WARNING:preferable_order names other:X, which is not a region of target other" in err



@pytest.mark.parametrize(
    "name",
    ["plain", "with,comma", 'with"quote', "with\nnewline", "with\rreturn", " spaced ",
     "ünïcode·名", "tab\there", "'single'", "x" * 300, ",", '"'],
)  # fmt: skip
def test_status_lines_are_what_csv_writes(name, capsys):
    import csv
    import io

    from glancesync.cli import write_status_lines
    from glancesync.status import RegionStatus

    region = RegionStatus("Reg,ion", ["ok"], [name], [1], ["m1"], ["d1"], {}, {}, [], [],
                          False, False)  # fmt: skip
    write_status_lines(region)
    expected = io.StringIO()
    csv.writer(expected, lineterminator="\n").writerow(["ok", "Reg,ion", name])
    assert capsys.readouterr().out == expected.getvalue()
