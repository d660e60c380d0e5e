"""Credentials as OpenStack operators give them, with the real CLI on the real test bed.

clouds.yaml with --os-cloud or OS_CLOUD (and nothing else: no configuration file), token
and application-credential auth types from OS_* variables, domain ids, the file's
credentials winning as a whole over a sourced openrc, clouds.yaml spellings and 2015
``/v2.0`` URLs in the file, and the message when there are no credentials at all.
"""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

try:  # the helpers of the CLI tests (same directory; package or sys.path import)
    from .test_cli_live import KB, data, glancesync_command
except ImportError:
    from test_cli_live import KB, data, glancesync_command

PENDING = "pending_upload,RegionA,img\npending_upload,RegionB,img\n"


@pytest.fixture
def run(testbed, tmp_path: Path):
    """run(*args, env={OS_*...}): glancesync with only the given OS_* variables."""
    assert not Path("/etc/glancesync.conf").exists(), "this machine has a global config"
    testbed.create_image("Master", "img", data("img", 4 * KB), visibility="public")

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "GLANCESYNC_"))}
        clean.update(env, GLANCESYNC_LOCK_FILE=str(tmp_path / "lock"), HOME=str(tmp_path))
        proc = subprocess.run(glancesync_command() + list(args), cwd=tmp_path, env=clean,
                              capture_output=True, text=True, timeout=300)
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return proc

    return run


@pytest.fixture
def clouds_yaml(testbed, tmp_path: Path) -> Path:
    env = testbed.env
    path = tmp_path / "clouds.yaml"
    path.write_text(
        "clouds:\n"
        "  bed:\n"
        "    region_name: Master\n"
        "    interface: public\n"
        "    auth:\n"
        f"      auth_url: {env['OS_AUTH_URL']}\n"
        f"      username: {env['OS_USERNAME']}\n"
        f"      password: {env['OS_PASSWORD']}\n"
        f"      project_name: {env['OS_PROJECT_NAME']}\n"
        "      user_domain_id: default\n"
        "      project_domain_id: default\n"
    )
    return path


def out(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout + proc.stderr


def test_os_cloud_with_only_a_clouds_yaml(run, clouds_yaml: Path):
    """No configuration file, no OS_* credentials: master region and regions from the cloud."""
    env = {"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)}
    status = run("--os-cloud", "bed", "--show-status", env=env)
    assert status.returncode in (0, 3), out(status)  # 3: --detailed-exitcode style codes
    assert status.stdout == PENDING
    # OS_CLOUD alone is the same; a stray openrc project/password is not mixed into it
    stray = {"OS_CLOUD": "bed", "OS_PROJECT_ID": "no-such-project", "OS_PASSWORD": "wrong"}
    status = run("--show-status", env={**env, **stray})
    assert status.stdout == PENDING, out(status)
    assert "wrong" not in out(status)
    regions = run("--show-regions", env={**env, "OS_CLOUD": "bed"})
    assert regions.stdout == "RegionA RegionB\n", out(regions)


def test_an_unknown_cloud_is_one_line(run, clouds_yaml: Path):
    proc = run("--os-cloud", "nope", "--show-status",
               env={"OS_CLIENT_CONFIG_FILE": str(clouds_yaml)})
    assert proc.returncode == 2, out(proc)
    assert f"Target master: no cloud 'nope' in {clouds_yaml}" in out(proc)


def test_token_auth_type_from_the_environment(run, testbed):
    session = testbed.keystone_session("master")
    env = {
        "OS_AUTH_TYPE": "v3token",
        "OS_TOKEN": session.get_token(),
        "OS_AUTH_URL": testbed.env["OS_AUTH_URL"],
        "OS_PROJECT_ID": session.get_project_id(),
        "OS_REGION_NAME": "Master",
    }
    status = run("--show-status", env=env)
    assert status.stdout == PENDING, out(status)
    assert env["OS_TOKEN"] not in out(status)


def test_domain_ids_from_the_environment_are_honoured(run, testbed):
    openrc = {k: v for k, v in testbed.env.items() if "DOMAIN" not in k}
    good = {**openrc, "OS_USER_DOMAIN_ID": "default", "OS_PROJECT_DOMAIN_ID": "default"}
    status = run("--show-status", env=good)
    assert status.stdout == PENDING, out(status)
    # a user domain that does not exist is not silently replaced by Default
    bad = run("--show-status", env={**good, "OS_USER_DOMAIN_ID": "no-such-domain"})
    assert bad.returncode != 0, out(bad)
    assert bad.stdout == ""
    assert "rejected the credentials" in out(bad) or "401" in out(bad), out(bad)
    assert testbed.env["OS_PASSWORD"] not in out(bad)


def test_the_files_credentials_win_as_a_whole_over_a_sourced_openrc(run, testbed, tmp_path):
    env = testbed.env
    conf = tmp_path / "glancesync.conf"
    # clouds.yaml spellings (username, auth_url, project_name) and a 2015 /v2.0 URL
    v2_url = env["OS_AUTH_URL"].removesuffix("/v3") + "/v2.0"
    conf.write_text(
        "[main]\nmaster_region = Master\n[master]\n"
        f"username = {env['OS_USERNAME']}\npassword = {env['OS_PASSWORD']}\n"
        f"auth_url = {v2_url}\nproject_name = {env['OS_PROJECT_NAME']}\n"
    )
    openrc = {  # another identity entirely: none of it may leak into the file's
        "OS_CLOUD": "elsewhere", "OS_PROJECT_ID": "no-such-project",
        "OS_APPLICATION_CREDENTIAL_ID": "no-such-credential",
        "OS_APPLICATION_CREDENTIAL_SECRET": "wrong", "OS_USER_DOMAIN_ID": "no-such-domain",
        "OS_AUTH_TYPE": "v3token", "OS_TOKEN": "not-a-token", "OS_REGION_NAME": "RegionB",
    }
    status = run("--config-file", str(conf), "--show-status", env=openrc)
    assert status.stdout == PENDING, out(status)
    assert f"{v2_url} is a Keystone v2.0 URL; glancesync uses Keystone v3" in out(status)
    assert "did you mean" not in out(status)


def test_no_credentials_at_all_is_one_short_line_mentioning_clouds_yaml(run):
    proc = run("--show-status", env={"OS_REGION_NAME": "Master"})
    assert proc.returncode == 2, out(proc)
    lines = [line for line in out(proc).splitlines() if "credentials" in line]
    assert len(lines) == 1, out(proc)
    assert "no OpenStack credentials" in lines[0] and "clouds.yaml" in lines[0]
    assert len(lines[0]) < 250


def test_application_credential_from_a_cloud_for_another_target(run, testbed, tmp_path):
    """A `cloud =` target whose clouds.yaml entry uses auth_type v3applicationcredential."""
    from keystoneclient.v3 import client as keystone_client

    session = testbed.keystone_session("target")
    ks = keystone_client.Client(session=session)
    app = ks.application_credentials.create(
        name=f"glancesync-cred-{os.getpid()}", user=session.get_user_id()
    )
    try:
        clouds = tmp_path / "clouds.yaml"
        clouds.write_text(
            "clouds:\n  other:\n    auth_type: v3applicationcredential\n    auth:\n"
            f"      auth_url: {testbed.target_env['OS_AUTH_URL']}\n"
            f"      application_credential_id: {app.id}\n"
            f"      application_credential_secret: {app.secret}\n"
        )
        env = testbed.env
        password = base64.b64encode(env["OS_PASSWORD"].encode()).decode()
        conf = tmp_path / "glancesync.conf"
        conf.write_text(
            "[main]\nmaster_region = Master\n[master]\n"
            f"credential = {env['OS_USERNAME']},{password},{env['OS_AUTH_URL']},"
            f"{env['OS_PROJECT_NAME']}\n[other]\ncloud = other\n"
        )
        status = run("--config-file", str(conf), "--show-status", "other:",
                     env={"OS_CLIENT_CONFIG_FILE": str(clouds)})
        assert status.stdout == "pending_upload,other:RegionC,img\n", out(status)
        assert app.secret not in out(status)
    finally:
        ks.application_credentials.delete(app.id)
