"""--debug against the real Keystone + Glance: the HTTP requests are shown, secrets never."""

from __future__ import annotations

import re

import test_cli_live

gs = test_cli_live.gs  # the CLI run against the test bed
by_name = test_cli_live.by_name

FERNET = re.compile(r"gAAAAA[\w-]{20,}")  # what a Keystone token looks like


def test_debug_shows_requests_without_tokens_or_passwords(testbed, gs):
    testbed.create_image("Master", "img", b"x" * 1000, visibility="public")
    proc = gs("--debug", "--show-status", "RegionA", "other:")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "pending_upload,RegionA,img",
        "pending_upload,other:RegionC,img",
    ]
    log = proc.stderr
    assert "/v3/auth/tokens" in log  # keystoneauth's requests are there...
    assert "/v2/images" in log  # ...and Glance's
    assert "X-Auth-Token: ***" in log
    for password in (testbed.env["OS_PASSWORD"], testbed.target_env["OS_PASSWORD"]):
        assert password not in log
    assert not FERNET.search(log), FERNET.search(log)


def test_without_debug_no_request_is_logged(testbed, gs):
    proc = gs("-v", "--show-status", "RegionA")
    assert proc.returncode == 0, proc.stderr
    assert "/v3/auth/tokens" not in proc.stderr
    assert "X-Auth-Token" not in proc.stderr


def test_report_metrics_and_json_of_a_real_sync(testbed, gs, tmp_path):
    import json
    from pathlib import Path

    import jsonschema
    from prometheus_client.parser import text_string_to_metric_families

    import glancesync

    schema = json.loads((Path(glancesync.__file__).parent / "output.schema.json").read_text())
    testbed.create_image("Master", "img", b"y" * 300_000, visibility="public")
    dry = gs("--dry-run", "--format", "json", "--detailed-exitcode", "RegionA")
    assert dry.returncode == 4, dry.stderr
    plan = json.loads(dry.stdout)
    jsonschema.validate(plan, schema)
    assert [op["operation"] for op in plan["regions"][0]["operations"]] == ["upload"]
    assert "RegionA: Work pending: 293.0 KiB to upload (1 image), 0 metadata updates" in dry.stderr

    report, prom = tmp_path / "report.json", tmp_path / "glancesync.prom"
    sync = gs("--report", str(report), "--metrics-file", str(prom), "RegionA")
    assert sync.returncode == 0, sync.stderr
    document = json.loads(report.read_text())
    jsonschema.validate(document, schema)
    [region] = document["regions"]
    assert (region["region"], region["status"], region["uploaded"], region["bytes"]) == (
        "RegionA", "synchronized", 1, 300_000,
    )  # fmt: skip
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(prom.read_text())
        for s in family.samples
    }
    assert samples[("glancesync_region_bytes", (("region", "RegionA"),))] == 300_000
    assert samples[("glancesync_last_run_success", ())] == 1
    assert "INFO:Total: 1 region; uploaded 1, " in sync.stderr
    assert testbed.download("RegionA", by_name(testbed, "RegionA")["img"]["id"]) == b"y" * 300_000
