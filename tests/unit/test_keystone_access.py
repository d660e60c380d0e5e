"""Credentials -> keystoneauth1 plugin, TLS and interface (glancesync.facade.keystone).

No network: keystoneauth1 plugins only contact Keystone when a token is first needed, so
what is checked here is which plugin, with which identity, scope, URL and interface a
target would authenticate. The real Keystone is in tests/integration/test_credentials_live.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from keystoneauth1.identity import generic, v3

from glancesync.config import Credentials
from glancesync.exceptions import ConfigError
from glancesync.facade import keystone

CLOUDS_YAML = """\
clouds:
  lab:
    region_name: Spain
    interface: internal
    auth:
      auth_url: https://lab.example.org:5000/v3
      username: labuser
      password: labpassword
      project_name: labproject
      user_domain_id: labdomain
      project_domain_id: labdomain
  apps:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://apps.example.org:5000/v2.0
      application_credential_id: appid
      application_credential_secret: appsecret
  broken:
    auth:
      username: u
      password: labpassword
"""
SECRETS = ("labpassword", "appsecret", "envpassword", "tokenvalue", "filepassword")


@pytest.fixture(autouse=True)
def environment(monkeypatch, tmp_path: Path) -> Path:
    """Only the variables a test sets, and the clouds.yaml above."""
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(CLOUDS_YAML)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    return clouds


OPENRC = {
    "OS_AUTH_URL": "https://env.example.org:5000/v3",
    "OS_USERNAME": "envuser",
    "OS_PASSWORD": "envpassword",
    "OS_PROJECT_NAME": "envproject",
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_DOMAIN_NAME": "Default",
}


def setenv(monkeypatch, **variables: str) -> None:
    for key, value in variables.items():
        monkeypatch.setenv(key, value)


def errors_of(creds: Credentials, target: str = "master") -> str:
    with pytest.raises(ConfigError) as err:
        keystone.access(target, creds)
    message = str(err.value)
    assert "\n" not in message
    for secret in SECRETS:
        assert secret not in message
    return message


# -- credentials of the configuration file -----------------------------------------------


def test_file_password_defaults_to_the_default_domain():
    creds = Credentials(auth_url="http://k/v3", username="u", password="filepassword",
                        project_name="p")
    access = keystone.access("master", creds)
    assert isinstance(access.auth, v3.Password)
    method = access.auth.auth_methods[0]
    assert (method.username, method.user_domain_name, method.user_domain_id) == (
        "u", "Default", None)
    assert (access.auth.project_name, access.auth.project_domain_name) == ("p", "Default")
    assert (access.interface, access.verify, access.keystone) == ("public", True, "http://k/v3")
    assert access.who == "user 'u' (project 'p')"


def test_file_domain_ids_are_used_instead_of_names():
    creds = Credentials(auth_url="http://k/v3", username="u", password="filepassword",
                        project_name="p", user_domain_id="ud", project_domain_id="pd")
    auth = keystone.access("master", creds).auth
    assert (auth.auth_methods[0].user_domain_id, auth.auth_methods[0].user_domain_name) == (
        "ud", None)
    assert (auth.project_domain_id, auth.project_domain_name) == ("pd", None)


def test_file_project_id_scopes_without_a_domain():
    creds = Credentials(auth_url="http://k/v3", username="u", password="x", project_id="pid",
                        project_name="ignored")
    auth = keystone.access("master", creds).auth
    assert (auth.project_id, auth.project_name, auth.project_domain_name) == ("pid", None, None)


def test_file_application_credential_and_tls():
    creds = Credentials(auth_url="http://k/v3", application_credential_id="acid",
                        application_credential_secret="appsecret", insecure=True,
                        interface="admin")
    access = keystone.access("other", creds)
    assert isinstance(access.auth, v3.ApplicationCredential)
    assert access.auth.auth_methods[0].application_credential_id == "acid"
    assert (access.verify, access.interface) == (False, "admin")
    assert access.who == "application credential acid"


def test_incomplete_file_credentials_name_the_missing_fields():
    message = errors_of(Credentials(auth_url="http://k/v3", username="u"))
    assert message == "Target master: incomplete Keystone credentials, missing password, " \
        "project_name"


def test_the_file_is_used_as_a_whole_whatever_the_environment_says(monkeypatch):
    setenv(monkeypatch, **OPENRC, OS_CLOUD="lab", OS_PROJECT_ID="envpid",
           OS_AUTH_TYPE="v3token", OS_TOKEN="tokenvalue", OS_USER_DOMAIN_ID="envdomain")
    creds = Credentials(auth_url="http://k/v3", username="u", password="filepassword",
                        project_name="p")
    auth = keystone.access("master", creds).auth
    assert isinstance(auth, v3.Password)
    assert (auth.auth_url, auth.auth_methods[0].username, auth.project_name) == (
        "http://k/v3", "u", "p")
    assert (auth.project_id, auth.auth_methods[0].user_domain_id) == (None, None)


# -- clouds.yaml ---------------------------------------------------------------------------


def test_a_cloud_is_used_as_written_with_its_interface(monkeypatch):
    # a sourced openrc does not leak into a named cloud
    setenv(monkeypatch, **OPENRC, OS_PROJECT_ID="envpid", OS_INTERFACE="admin")
    access = keystone.access("master", Credentials(cloud="lab"))
    assert isinstance(access.auth, generic.Password)
    assert access.auth.auth_url == "https://lab.example.org:5000/v3"
    assert (access.auth._username, access.auth._user_domain_id) == ("labuser", "labdomain")
    assert (access.auth._project_name, access.auth._project_id) == ("labproject", None)
    assert access.interface == "internal"
    assert (access.keystone, access.who) == ("cloud 'lab'", "cloud 'lab'")


def test_the_files_interface_beats_the_clouds():
    access = keystone.access("master", Credentials(cloud="lab", interface="public"))
    assert access.interface == "public"


def test_a_cloud_auth_type_and_a_v2_url(caplog):
    with caplog.at_level(logging.WARNING):
        access = keystone.access("other", Credentials(cloud="apps"))
    assert isinstance(access.auth, v3.ApplicationCredential)
    assert access.auth.auth_url == "https://apps.example.org:5000/v3"
    [record] = caplog.records
    assert record.getMessage() == (
        "clouds.yaml cloud 'apps' auth_url: https://apps.example.org:5000/v2.0 is a Keystone "
        "v2.0 URL; glancesync uses Keystone v3: using https://apps.example.org:5000/v3"
    )


def test_unknown_and_incomplete_clouds(environment: Path):
    assert errors_of(Credentials(cloud="nope"), "other") == (
        f"Target other: no cloud 'nope' in {environment}")
    assert errors_of(Credentials(cloud="broken"), "other") == (
        "Target other: clouds.yaml cloud 'broken': missing auth.auth_url")


def test_no_clouds_yaml_at_all(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "absent.yaml"))
    assert errors_of(Credentials(cloud="lab")).startswith(
        "Target master: no clouds.yaml found ($OS_CLIENT_CONFIG_FILE, ")


def test_cloud_region_name():
    assert keystone.cloud_region_name("lab") == "Spain"
    assert keystone.cloud_region_name("apps") is None


# -- the environment (master target without credentials in the file) -----------------------


def test_openrc_variables_with_domain_ids(monkeypatch):
    setenv(monkeypatch, OS_AUTH_URL="https://env.example.org:5000/v3", OS_USERNAME="envuser",
           OS_PASSWORD="envpassword", OS_PROJECT_NAME="envproject",
           OS_USER_DOMAIN_ID="ud", OS_PROJECT_DOMAIN_ID="pd", OS_INTERFACE="internalURL")
    access = keystone.access("master", Credentials(from_environment=True))
    assert isinstance(access.auth, generic.Password)
    assert (access.auth._user_domain_id, access.auth._project_domain_id) == ("ud", "pd")
    assert (access.auth._user_domain_name, access.auth._project_domain_name) == (None, None)
    assert access.interface == "internal"
    assert access.keystone == "https://env.example.org:5000/v3"
    assert access.who == "user 'envuser' (project 'envproject')"


def test_os_auth_type_token(monkeypatch):
    setenv(monkeypatch, OS_AUTH_TYPE="v3token", OS_TOKEN="tokenvalue",
           OS_AUTH_URL="https://env.example.org:5000/v3", OS_PROJECT_ID="pid")
    access = keystone.access("master", Credentials(from_environment=True))
    assert isinstance(access.auth, v3.Token)
    assert access.auth.project_id == "pid"
    assert access.who == "a token (project 'pid')"


def test_os_auth_type_application_credential(monkeypatch):
    setenv(monkeypatch, OS_AUTH_TYPE="v3applicationcredential",
           OS_AUTH_URL="https://env.example.org:5000/v3",
           OS_APPLICATION_CREDENTIAL_ID="acid", OS_APPLICATION_CREDENTIAL_SECRET="appsecret")
    access = keystone.access("master", Credentials(from_environment=True))
    assert isinstance(access.auth, v3.ApplicationCredential)
    assert access.who == "application credential acid"


def test_os_cloud_selects_a_cloud_and_no_variable_is_mixed_in(monkeypatch):
    setenv(monkeypatch, **OPENRC, OS_PROJECT_ID="envpid")
    access = keystone.access("master", Credentials(cloud="lab", from_environment=True))
    assert (access.auth._username, access.auth._project_id) == ("labuser", None)
    assert access.interface == "internal"


def test_no_credentials_anywhere_is_one_short_line():
    message = errors_of(Credentials(from_environment=True))
    assert message == keystone.NO_CREDENTIALS
    assert "clouds.yaml" in message
    assert len(message) < 220


def test_incomplete_variables_name_what_to_export(monkeypatch):
    setenv(monkeypatch, OS_USERNAME="envuser", OS_PASSWORD="envpassword")
    assert errors_of(Credentials(from_environment=True)) == (
        "Target master: incomplete credentials in the OS_* variables: missing OS_AUTH_URL")


def test_an_unknown_auth_type_is_a_configuration_error(monkeypatch):
    setenv(monkeypatch, **OPENRC, OS_AUTH_TYPE="v3nonsense")
    assert errors_of(Credentials(from_environment=True)).startswith(
        "Target master: the OS_* variables: ")
