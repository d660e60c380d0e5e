"""--debug against the real Keystone + Glance: the HTTP requests are shown, secrets never."""

from __future__ import annotations

import re

import test_cli_live

gs = test_cli_live.gs  # the CLI run against the test bed

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
