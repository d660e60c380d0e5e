"""Configuration loading (glancesync.config): the 2015 format, with our decisions."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest

from glancesync import config
from glancesync.condition import Condition
from glancesync.config import (
    Credentials,
    Settings,
    TargetConfig,
    load_settings,
    validate_credentials,
)
from glancesync.exceptions import ConfigError
from glancesync.image import Image

REPO = Path(__file__).resolve().parents[2]
CONDITION = (
    "image.is_public and ('nid' in image.user_properties or 'type' in image.user_properties)"
)

# The 2015 tool's test configuration, unchanged.
CONFIGURATION = """
[main]
# Region where are the images in the "master" target
master_region = Spain
preferable_order = Trento, Lannion, Waterford, Berlin, Prague
max_children = 1

[DEFAULT]
# replace = 9046fd22131a96502cb0d85b4a406a5a
forcesyncs = d93462dc-e7c7-4716-ab64-3cbc109b201f,\\
  3471db65-a449-41d5-9090-b8889ee404cb
metadata_condition = image.is_public and \\
  ('nid' in image.user_properties or 'type' in image.user_properties)
metadata_set = nid , type, sdc_aware, nid_version
only_tenant_images = True

[master]
user= user1
password = fakepassword,ofcourse
tenant = tenant1
keystone_url = http://server:4730/v2.0

#credential = user1,\\
# ZmFrZXBhc3N3b3JkLG9mY291cnNl,\\
# http://server:4730/v2.0,tenant1
only_tenant_images = False

list_images_timeout = 20
use_keystone_v3 = True

[experimental]
credential = user2,\\
  ZmFrZXBhc3N3b3JkLG9mY291cnNl,\\
  http://server2:4730/v2.0,tenant2
ignore_regions = Spain
metadata_condition=
# A hack useful in mock mode
tenant_id = tenant2_id
support_obsolete_images = False
"""

MINIMAL = """
[main]
master_region = {0}

[master]
credential = user,ZmFrZXBhc3N3b3JkLG9mY291cnNl,\\
  http://server:4730/v2.0,tenant1
"""

OPENRC = {
    "OS_REGION_NAME": "Valladolid",
    "OS_USERNAME": "user",
    "OS_PASSWORD": "password",
    "OS_TENANT_NAME": "tenant",
    "OS_AUTH_URL": "url",
}


@pytest.fixture(autouse=True)
def no_default_file(monkeypatch, tmp_path):
    """Never read the host's /etc/glancesync.conf, clouds.yaml or OS_* variables."""
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", str(tmp_path / "absent.conf"))
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "absent-clouds.yaml"))


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "glancesync.conf") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def load(write, text: str, overrides=(), environ=None) -> Settings:
    return load_settings(write(text), overrides, environ if environ is not None else {})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- the 2015 test configuration -----------------------------------------------------


def test_multi_line_forcesyncs_and_the_targets(write):
    settings = load(write, CONFIGURATION)
    assert settings.master.forcesyncs == {
        "d93462dc-e7c7-4716-ab64-3cbc109b201f",
        "3471db65-a449-41d5-9090-b8889ee404cb",
    }
    assert list(settings.targets) == ["master", "experimental"]
    assert isinstance(settings.targets["experimental"], TargetConfig)


def test_main_fields(write):
    settings = load(write, CONFIGURATION)
    assert settings.master_region == "Spain"
    assert settings.max_children == 1
    assert settings.preferable_order == ("Trento", "Lannion", "Waterford", "Berlin", "Prague")
    assert settings.images_dir == "/var/lib/glance/images"
    assert settings.source.endswith("glancesync.conf")


def test_master_fields(write):
    master = load(write, CONFIGURATION).master
    assert master.replace == master.rename == master.dontupdate == frozenset()
    assert master.ignore_regions == frozenset()
    assert master.metadata_set == {"nid", "type", "sdc_aware", "nid_version"}
    assert master.metadata_condition == Condition(CONDITION)
    assert master.credentials.username == "user1"
    assert master.credentials.password == "fakepassword,ofcourse"
    assert master.credentials.auth_url == "http://server:4730/v3"  # Keystone v2.0 is gone
    assert master.credentials.project_name == "tenant1"
    assert master.only_tenant_images is False  # section beats DEFAULT
    assert master.support_obsolete_images is True
    assert master.list_images_timeout == 20


def test_experimental_fields(write):
    experimental = load(write, CONFIGURATION).targets["experimental"]
    creds = experimental.credentials
    assert (creds.username, creds.password, creds.auth_url, creds.project_name) == (
        "user2", "fakepassword,ofcourse", "http://server2:4730/v3", "tenant2"
    )
    assert experimental.metadata_condition is None  # "metadata_condition=" unsets DEFAULT's
    assert experimental.metadata_set == {"nid", "type", "sdc_aware", "nid_version"}
    assert experimental.ignore_regions == {"Spain"}
    assert experimental.tenant_id == "tenant2_id"
    assert experimental.support_obsolete_images is False
    assert experimental.only_tenant_images is True
    assert experimental.list_images_timeout == 30


def test_condition_from_the_file_selects_images(write):
    cond = load(write, CONFIGURATION).master.metadata_condition
    assert cond(Image(id="1", name="a", properties={"nid": "1"}), frozenset()) is True
    assert cond(Image(id="2", name="b", visibility="private", properties={"nid": "1"}),
                frozenset()) is False


def test_overrides_section_and_default(write):
    settings = load(write, CONFIGURATION, ["master.user=otheruser", "only_tenant_images=False"])
    assert settings.master.credentials.username == "otheruser"
    assert settings.targets["experimental"].only_tenant_images is False


def test_default_override_does_not_beat_an_explicit_section_value(write):
    settings = load(write, CONFIGURATION, ["only_tenant_images=True", "list_images_timeout=5"])
    assert settings.master.only_tenant_images is False  # written in [master]
    assert settings.master.list_images_timeout == 20  # written in [master]
    assert settings.targets["experimental"].list_images_timeout == 5


def test_section_override_beats_the_section_value(write):
    settings = load(write, CONFIGURATION, ["master.only_tenant_images=yes"])
    assert settings.master.only_tenant_images is True


def test_default_override_beats_default_in_the_file(write):
    settings = load(write, CONFIGURATION, ["metadata_set=a,b", "DEFAULT.forcesyncs="])
    assert settings.targets["experimental"].metadata_set == {"a", "b"}
    assert settings.targets["experimental"].forcesyncs == frozenset()


def test_use_keystone_v3_is_accepted_and_false_warns_once(write, caplog):
    text = CONFIGURATION.replace("use_keystone_v3 = True", "use_keystone_v3 = False")
    with caplog.at_level(logging.WARNING):
        load(write, text + "use_keystone_v3 = no\n")
    [record] = [r for r in caplog.records if "Keystone v2.0 URL" not in r.getMessage()]
    assert "use_keystone_v3" in record.getMessage()
    assert "Keystone v3" in record.getMessage()


# -- where the file comes from ----------------------------------------------------------


@pytest.fixture
def four_files(write, monkeypatch):
    files = {name: write(MINIMAL.format(f"region_{name}"), f"{name}.conf")
             for name in ("explicit", "environment", "etc")}
    monkeypatch.setattr(config, "DEFAULT_CONFIG_FILE", files["etc"])
    return files


def test_explicit_file_beats_environment_and_default(four_files):
    env = {"GLANCESYNC_CONFIG": four_files["environment"]}
    assert load_settings(four_files["explicit"], environ=env).master_region == "region_explicit"


def test_environment_beats_default_file(four_files):
    env = {"GLANCESYNC_CONFIG": four_files["environment"]}
    settings = load_settings(environ=env)
    assert settings.master_region == "region_environment"
    assert settings.source == four_files["environment"]


def test_default_file_is_read_when_nothing_else_is_given(four_files):
    assert load_settings(environ={}).master_region == "region_etc"


def test_explicit_missing_file_is_an_error(tmp_path):
    missing = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match=f"cannot read configuration file {missing}"):
        load_settings(missing, environ=OPENRC)


def test_glancesync_config_naming_a_missing_file_is_an_error(tmp_path):
    missing = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError) as err:
        load_settings(environ={**OPENRC, "GLANCESYNC_CONFIG": missing})
    assert f"cannot read configuration file {missing} (named by GLANCESYNC_CONFIG)" in str(
        err.value
    )


def test_a_directory_is_not_a_configuration_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_settings(str(tmp_path), environ=OPENRC)


# -- environment only -------------------------------------------------------------------


def test_environment_only_gives_a_complete_master_with_all_defaults():
    settings = load_settings(environ=OPENRC)
    assert settings.source == "environment"
    assert settings.master_region == "Valladolid"
    assert settings.max_children == 1
    assert settings.preferable_order == ()
    assert settings.images_dir == "/var/lib/glance/images"
    assert list(settings.targets) == ["master"]
    # the OS_* variables are read by openstacksdk when the master is contacted
    assert settings.master == TargetConfig(
        name="master", credentials=Credentials(from_environment=True)
    )
    # the 2015 KeyError('support_obsolete_images') cannot happen: every field is set
    assert settings.master.support_obsolete_images is True
    assert settings.master.list_images_timeout == 30
    assert settings.master.only_tenant_images is True
    assert validate_credentials(settings, "master").auth_method == "environment"


def test_os_cloud_alone_takes_the_master_region_from_clouds_yaml(tmp_path, monkeypatch):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab:\n    region_name: Spain\n    auth: {auth_url: 'http://k/v3'}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    settings = load_settings(environ={"OS_CLOUD": "lab"})
    assert settings.master_region == "Spain"
    assert settings.master.credentials == Credentials(cloud="lab", from_environment=True)
    # OS_REGION_NAME picks another region of the cloud, as with the openstack command
    assert load_settings(environ={"OS_CLOUD": "lab", "OS_REGION_NAME": "B"}).master_region == "B"
    # --os-cloud: the same, and it beats OS_CLOUD
    settings = load_settings(environ={"OS_CLOUD": "other"}, os_cloud="lab")
    assert settings.master_region == "Spain"
    assert settings.master.credentials == Credentials(cloud="lab")


def test_a_cloud_named_in_the_file_brings_its_region_before_os_region_name(
    write, tmp_path, monkeypatch
):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab:\n    region_name: Spain\n    auth: {auth_url: 'http://k/v3'}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    settings = load(write, "[master]\ncloud = lab\n", environ={"OS_REGION_NAME": "Stray"})
    assert settings.master_region == "Spain"
    assert settings.master.credentials == Credentials(cloud="lab")


def test_an_unknown_cloud_needed_for_the_master_region_is_an_error(tmp_path, monkeypatch):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  lab:\n    auth: {auth_url: 'http://k/v3'}\n")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, os_cloud="nope")
    assert str(err.value) == f"Target master: no cloud 'nope' in {clouds}"
    with pytest.raises(ConfigError, match="or give the cloud a region_name in clouds.yaml"):
        load_settings(environ={}, os_cloud="lab")  # a cloud without region_name


def test_environment_only_without_any_credential_still_loads():
    settings = load_settings(environ={"OS_REGION_NAME": "R"})
    assert settings.master.credentials == Credentials(from_environment=True)


def test_no_master_region_anywhere_is_an_error():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"OS_USERNAME": "u"})
    assert "master_region is not set: add master_region to [main]" in str(err.value)
    assert "export OS_REGION_NAME" in str(err.value)


def test_no_master_region_in_the_file_names_the_file(write):
    path = write("[master]\n")
    with pytest.raises(ConfigError, match=f"add master_region to \\[main\\] in {path}, "):
        load_settings(path, environ={})


def test_empty_master_section_and_default_values(write):
    text = "[main]\nmaster_region = Spain2\n\n[DEFAULT]\nonly_tenant_images = False\n\n[master]\n"
    settings = load(write, text, environ=OPENRC)
    assert settings.master_region == "Spain2"  # the file beats OS_REGION_NAME
    assert settings.images_dir == "/var/lib/glance/images"
    assert settings.master.only_tenant_images is False
    assert settings.master.credentials == Credentials(from_environment=True)


def test_overrides_work_without_a_file():
    settings = load_settings(
        overrides=["main.master_region=X", "master.metadata_set=nid", "max_children=3"],
        environ={"OS_USERNAME": "u"},
    )
    assert settings.master_region == "X"
    assert settings.master.metadata_set == {"nid"}
    assert settings.max_children == 3  # [DEFAULT] is inherited by [main]


def test_master_region_in_default_is_inherited_by_main(write):
    assert load(write, "[DEFAULT]\nmaster_region = Burgos\n").master_region == "Burgos"


# -- credentials --------------------------------------------------------------------------


def test_the_files_credentials_are_never_completed_from_the_environment(write):
    # A sourced openrc must not switch the project, user or auth method of credentials
    # the file names: the file's credentials are used as a whole.
    text = "[main]\nmaster_region = R\n[master]\nuser = fileuser\nkeystone_url = http://k/v3\n"
    env = {"OS_USERNAME": "envuser", "OS_PASSWORD": "envpass", "OS_PROJECT_NAME": "envproj",
           "OS_PROJECT_ID": "envpid", "OS_AUTH_URL": "http://env/v3", "OS_CLOUD": "envcloud",
           "OS_APPLICATION_CREDENTIAL_ID": "envac", "OS_USER_DOMAIN_ID": "envdom"}
    creds = load(write, text, environ=env).master.credentials
    assert creds == Credentials(username="fileuser", auth_url="http://k/v3")
    assert creds.auth_method == "password"
    assert creds.missing() == ["password", "project_name"]


def test_domains_and_tls_alone_do_not_name_credentials(write):
    text = ("[main]\nmaster_region = R\n[DEFAULT]\nuser_domain_name = Users\n"
            "interface = internal\ncacert = /ca.pem\n[master]\n")
    creds = load(write, text, environ=OPENRC).master.credentials
    # the environment's credentials, with the file's connection settings
    assert creds == Credentials(from_environment=True, interface="internal", cacert="/ca.pem")


def test_clouds_yaml_spellings_are_aliases(write, caplog):
    text = ("[main]\nmaster_region = R\n[master]\nusername = u\npassword = p\n"
            "auth_url = http://k/v3\nproject_name = proj\nuser_domain_id = ud\n"
            "project_domain_id = pd\n")
    creds = load(write, text).master.credentials
    assert creds == Credentials(
        username="u", password="p", auth_url="http://k/v3", project_name="proj",
        user_domain_id="ud", project_domain_id="pd",
    )
    assert not caplog.records


def test_an_option_and_its_alias_in_one_section_is_an_error(write):
    path = write("[main]\nmaster_region = R\n[master]\nuser = a\nusername = b\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [master]: both 'user' and 'username' (the same option): keep one"
    )


def test_a_keystone_v2_url_becomes_v3_with_a_warning(write, caplog):
    text = ("[main]\nmaster_region = R\n[master]\nkeystone_url = https://k:5000/v2.0\n"
            f"[other]\ncredential = u,{b64('s3cret')},http://k2/v2.0/,t\n")
    with caplog.at_level(logging.WARNING):
        settings = load(write, text)
    assert settings.master.credentials.auth_url == "https://k:5000/v3"
    assert settings.targets["other"].credentials.auth_url == "http://k2/v3"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "section [master] keystone_url: https://k:5000/v2.0 is a Keystone v2.0 URL" in \
        messages[0]
    assert "using https://k:5000/v3" in messages[0]
    assert all("s3cret" not in m for m in messages)


def test_a_cloud_in_the_file_is_not_mixed_with_the_environment(write):
    text = "[main]\nmaster_region = R\n[master]\ncloud = mycloud\n"
    creds = load(write, text, environ=OPENRC).master.credentials
    assert creds == Credentials(cloud="mycloud")
    assert creds.auth_method == "cloud"
    assert creds.missing() == []


def test_os_cloud_from_the_environment():
    creds = load_settings(environ={"OS_REGION_NAME": "R", "OS_CLOUD": "c1"}).master.credentials
    assert creds == Credentials(cloud="c1", from_environment=True)
    assert creds.missing() == []


def test_os_cloud_option_replaces_the_files_master_credentials(write):
    text = "[main]\nmaster_region = R\n[master]\nuser = u\ninterface = internal\n"
    creds = load_settings(write(text), environ={"OS_CLOUD": "c1"}, os_cloud="c2").master.credentials
    assert creds == Credentials(cloud="c2", interface="internal")


def test_trailing_backslash_multi_line_credential(write):
    text = (
        "[main]\nmaster_region = R\n[master]\n"
        f"credential = admin,\\\n   {b64('s3cret')},\\\n   https://keystone:5000/v3,\\\n"
        "   admin\n"
    )
    creds = load(write, text).master.credentials
    assert creds.auth_url == "https://keystone:5000/v3"
    assert (creds.username, creds.password, creds.project_name) == ("admin", "s3cret", "admin")


def test_percent_in_password_and_condition(write):
    text = (
        "[main]\nmaster_region = R\n[master]\n"
        "password = 100%sure%(x)s\n"
        "metadata_condition = '%' in image.name\n"
        f"[other]\ncredential = u,{b64('p%d%%')},http://k,t\n"
    )
    settings = load(write, text)
    assert settings.master.credentials.password == "100%sure%(x)s"
    assert settings.targets["other"].credentials.password == "p%d%%"
    assert settings.master.metadata_condition(Image(id="1", name="a%b"), frozenset())


def test_plain_options_beat_the_credential_fields_of_the_same_section(write):
    text = f"[main]\nmaster_region = R\n[master]\ncredential = u,{b64('p')},http://k,t\nuser = v\n"
    creds = load(write, text).master.credentials
    assert (creds.username, creds.password, creds.auth_url, creds.project_name) == (
        "v", "p", "http://k", "t"
    )


def test_a_section_credential_beats_plain_options_in_default(write):
    text = (
        "[main]\nmaster_region = R\n[DEFAULT]\nuser = defaultuser\n"
        f"[other]\ncredential = u,{b64('p')},http://k,t\n"
    )
    assert load(write, text).targets["other"].credentials.username == "u"


def test_a_credential_in_default_counts_for_every_target(write):
    text = (
        f"[main]\nmaster_region = R\n[DEFAULT]\ncredential = u,{b64('p')},http://k,t\n"
        "[other]\nignore_regions = A\n"
    )
    settings = load(write, text)
    assert settings.targets["other"].credentials.username == "u"
    assert settings.master.credentials.username == "u"


def test_non_master_target_without_credentials_is_an_error(write):
    path = write("[main]\nmaster_region = R\n[other]\nmetadata_set = nid\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ=OPENRC)  # the environment only serves the master
    assert str(err.value) == (
        f"[{path}] section [other]: no credential: set credential = "
        "user,base64(password),keystone_url,tenant (or user/password/keystone_url/tenant, "
        "or cloud = NAME)"
    )


@pytest.mark.parametrize(
    "options", ["cloud = c", "application_credential_id = id\napplication_credential_secret = s",
                "user = u"]
)
def test_other_ways_of_giving_a_credential_to_a_non_master_target(write, options):
    settings = load(write, f"[main]\nmaster_region = R\n[other]\n{options}\n")
    assert "other" in settings.targets


def test_bad_base64_is_an_error_without_the_secret(write):
    path = write("[main]\nmaster_region = R\n[other]\ncredential = u,not*base64!,http://k,t\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert message.startswith(f"[{path}] section [other] option credential: ")
    assert "not valid base64" in message
    assert "not*base64!" not in message


def test_credential_needs_exactly_four_fields(write):
    path = write(f"[main]\nmaster_region = R\n[other]\ncredential = u,{b64('p')},http://k\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [other] option credential: expected "
        "user,base64(password),keystone_url,tenant (4 comma-separated fields), found 3 fields"
    )


def test_the_decoded_password_may_contain_commas(write):
    text = f"[main]\nmaster_region = R\n[master]\ncredential = u,{b64('a,b,c')},http://k,t\n"
    assert load(write, text).master.credentials.password == "a,b,c"


def test_keystone_v3_options(write):
    text = (
        "[main]\nmaster_region = R\n[master]\nuser = u\npassword = p\nkeystone_url = http://k\n"
        "project_id = pid\nuser_domain_name = users\nproject_domain_name = projects\n"
        "region_interface = internal\ncacert = /etc/ssl/ca.pem\ninsecure = yes\n"
    )
    creds = load(write, text).master.credentials
    assert creds == Credentials(
        auth_url="http://k", username="u", password="p", project_id="pid",
        user_domain_name="users", project_domain_name="projects", interface="internal",
        cacert="/etc/ssl/ca.pem", insecure=True,
    )
    assert creds.missing() == []  # a project id is enough


def test_bad_interface_is_an_error(write):
    path = write("[main]\nmaster_region = R\n[master]\ninterface = private\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [master] option interface: expected one of public, internal, "
        "admin, got 'private'"
    )


def test_secrets_are_not_in_the_repr():
    creds = Credentials(password="hunter2", application_credential_secret="topsecret")
    assert "hunter2" not in repr(creds)
    assert "topsecret" not in repr(creds)


def test_validate_credentials_names_the_missing_pieces_for_the_master(write):
    path = write("[main]\nmaster_region = R\n[master]\nuser = u\n")
    settings = load_settings(path, environ={})
    with pytest.raises(ConfigError) as err:
        validate_credentials(settings, "master")
    message = str(err.value)
    assert message.startswith(
        f"[{path}] section [master]: incomplete Keystone credentials (password "
        "authentication): missing auth_url (set keystone_url"
    )
    assert "missing auth_url (set keystone_url" in message
    assert "; password (set password" in message
    assert "; project_name (set tenant or project_id" in message
    assert message.endswith(
        "; or remove the credentials from [master] to use OS_CLOUD/--os-cloud (clouds.yaml) "
        "or the OS_* variables"
    )


def test_validate_credentials_for_another_target_does_not_mention_the_environment(write):
    settings = load(write, "[main]\nmaster_region = R\n[other]\nuser = u\npassword = p\n")
    with pytest.raises(ConfigError) as err:
        validate_credentials(settings, settings.targets["other"])
    assert "section [other]" in str(err.value)
    assert "missing auth_url" in str(err.value)
    assert "project_name" in str(err.value)
    assert "OS_" not in str(err.value)


def test_get_target_lists_the_known_targets(write):
    settings = load(write, CONFIGURATION)
    assert settings.get_target("experimental").name == "experimental"
    with pytest.raises(ConfigError, match=r"unknown target 'exp' \(known targets: master, "
                                          r"experimental\)"):
        settings.get_target("exp")


# -- value syntax --------------------------------------------------------------------------


def test_none_literal_means_unset(write):
    text = (
        "[main]\nmaster_region = None\npreferable_order = None\n"
        "[DEFAULT]\nmetadata_set = a\n"
        "[master]\nforcesyncs = None\nignore_regions = None\nmetadata_condition = None\n"
        "metadata_set = None\ntenant_id = None\n"
    )
    settings = load(write, text, environ={"OS_REGION_NAME": "Trento"})
    assert settings.master_region == "Trento"  # not the region 'None'
    assert settings.preferable_order == ()
    master = settings.master
    assert master.forcesyncs == master.ignore_regions == master.metadata_set == frozenset()
    assert master.metadata_condition is None
    assert master.tenant_id is None


def test_master_region_none_without_environment_is_an_error(write):
    with pytest.raises(ConfigError, match="master_region is not set"):
        load(write, "[main]\nmaster_region = None\n")


def test_csv_sets_drop_empty_items_and_spaces(write):
    text = "[main]\nmaster_region = R\n[master]\nreplace = a,, b ,\n  c,\\\n  d\ndontupdate = any\n"
    master = load(write, text).master
    assert master.replace == {"a", "b", "c", "d"}
    assert master.dontupdate == {"any"}


def test_preferable_order_keeps_order_and_drops_duplicates(write):
    text = "[main]\nmaster_region = R\npreferable_order = b, a, other:X, b\n"
    assert load(write, text).preferable_order == ("b", "a", "other:X")


def test_empty_value_in_a_section_unsets_the_default(write):
    text = "[main]\nmaster_region = R\n[DEFAULT]\nmetadata_set = nid\n[master]\nmetadata_set =\n"
    assert load(write, text).master.metadata_set == frozenset()


def test_multi_line_condition_without_backslashes(write):
    text = (
        "[main]\nmaster_region = R\n[master]\nmetadata_condition = image.is_public and\n"
        "    image.size < 10\n"
    )
    cond = load(write, text).master.metadata_condition
    assert cond.source == "image.is_public and image.size < 10"


@pytest.mark.parametrize("word", ["yes", "No", "TRUE", "false", "on", "OFF", "1", "0"])
def test_booleans(write, word):
    text = f"[main]\nmaster_region = R\n[master]\nsupport_obsolete_images = {word}\n"
    expected = word.lower() in ("yes", "true", "on", "1")
    assert load(write, text).master.support_obsolete_images is expected


def test_bad_boolean_names_option_and_words(write):
    path = write("[main]\nmaster_region = R\n[master]\nonly_tenant_images = maybe\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [master] option only_tenant_images: expected a boolean "
        "(yes/no, true/false, on/off, 1/0), got 'maybe'"
    )


@pytest.mark.parametrize(
    ("section", "option", "value"),
    [("main", "max_children", "0"), ("main", "max_children", "two"),
     ("master", "list_images_timeout", "-5"), ("DEFAULT", "list_images_timeout", "1.5")],
)
def test_bad_integers(write, section, option, value):
    header = "" if section == "main" else f"[{section}]\n"
    path = write(f"[main]\nmaster_region = R\n{header}{option} = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value).startswith(f"[{path}] section [{section}] option {option}: "
                                     "expected an integer >= 1, got ")


def test_a_bad_value_in_default_is_reported_even_when_every_section_overrides_it(write):
    path = write("[main]\nmaster_region = R\n[DEFAULT]\nonly_tenant_images = si\n"
                 "[master]\nonly_tenant_images = no\n")
    with pytest.raises(ConfigError, match=r"section \[DEFAULT\] option only_tenant_images"):
        load_settings(path, environ={})


def test_unsafe_condition_in_the_file_names_file_section_option(write):
    path = write("[main]\nmaster_region = R\n[master]\nmetadata_condition = __import__('os')\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [master] option metadata_condition: '__import__' is not allowed"
    )


def test_condition_syntax_error_names_file_section_option(write):
    path = write("[main]\nmaster_region = R\n[DEFAULT]\nmetadata_condition = image.name ==\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value).startswith(
        f"[{path}] section [DEFAULT] option metadata_condition: syntax error at line 1"
    )


# -- option and section names ---------------------------------------------------------


def test_misspelt_option_is_an_error_with_a_suggestion(write):
    path = write("[main]\nmaster_region = R\n[master]\nignore_region = Spain\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [master]: unknown option 'ignore_region' "
        "(did you mean 'ignore_regions'?)"
    )


def test_option_names_are_case_insensitive(write):
    text = "[main]\nMaster_Region = R\n[master]\nONLY_TENANT_IMAGES = no\n"
    settings = load(write, text)
    assert settings.master_region == "R"
    assert settings.master.only_tenant_images is False


def test_unknown_option_without_a_close_match(write):
    path = write("[main]\nmaster_region = R\n[DEFAULT]\nzzzzzz = 1\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == f"[{path}] section [DEFAULT]: unknown option 'zzzzzz'"


def test_main_option_in_a_target_and_target_option_in_main(write):
    path = write("[main]\nmaster_region = R\n[master]\nmax_children = 2\n")
    with pytest.raises(ConfigError, match=r"section \[master\]: 'max_children' belongs in "
                                          r"\[main\]"):
        load_settings(path, environ={})
    path = write("[main]\nmaster_region = R\nmetadata_set = nid\n", "b.conf")
    with pytest.raises(ConfigError, match=r"section \[main\]: 'metadata_set' is a per-target "
                                          r"option"):
        load_settings(path, environ={})


def test_defaults_with_an_s_is_reported(write):
    path = write("[main]\nmaster_region = R\n[DEFAULTS]\nmetadata_set = nid\n")
    with pytest.raises(ConfigError, match=r"section \[DEFAULTS\] is not allowed \(did you mean "
                                          r"\[DEFAULT\]\?\)"):
        load_settings(path, environ={})


def test_a_colon_in_a_target_name_is_an_error(write):
    path = write("[main]\nmaster_region = R\n[a:b]\ncloud = c\n")
    with pytest.raises(ConfigError, match=r"invalid section name \[a:b\]"):
        load_settings(path, environ={})


def test_unparsable_file_is_a_config_error(write):
    path = write("master_region = R\n")
    with pytest.raises(ConfigError, match=f"^\\[{path}\\]: cannot parse: line 1: "
                                          "'master_region = R' comes before any"):
        load_settings(path, environ={})


def test_duplicate_option_is_a_config_error(write):
    path = write("[main]\nmaster_region = R\nmaster_region = S\n")
    with pytest.raises(ConfigError, match="already exists"):
        load_settings(path, environ={})


# -- --config overrides -----------------------------------------------------------------------


def test_override_value_may_contain_equals_signs(write):
    settings = load(write, CONFIGURATION, ["master.metadata_condition=image.name=='a=b'"])
    cond = settings.master.metadata_condition
    assert cond.source == "image.name=='a=b'"
    assert cond(Image(id="1", name="a=b"), frozenset()) is True


def test_override_without_equals_is_an_error(write):
    with pytest.raises(ConfigError) as err:
        load(write, CONFIGURATION, ["x"])
    assert str(err.value) == "--config expects key=value, got 'x'"


def test_override_of_an_unknown_section_lists_the_known_ones(write):
    with pytest.raises(ConfigError) as err:
        load(write, CONFIGURATION, ["nosuch.metadata_set=a"])
    assert "--config nosuch.metadata_set: there is no section [nosuch]" in str(err.value)
    assert "(known sections: DEFAULT, main, master, experimental)" in str(err.value)


def test_override_with_two_dots_splits_on_the_first(write):
    with pytest.raises(ConfigError) as err:
        load(write, CONFIGURATION, ["master.only.tenant_images=1"])
    assert str(err.value).startswith("--config master.only.tenant_images: unknown option "
                                     "'only.tenant_images'")


def test_misspelt_override_is_an_error_with_a_suggestion(write):
    with pytest.raises(ConfigError) as err:
        load(write, CONFIGURATION, ["master.metadata_sets=a"])
    assert str(err.value) == (
        "--config master.metadata_sets: unknown option 'metadata_sets' "
        "(did you mean 'metadata_set'?)"
    )


def test_bad_override_value_names_the_override(write):
    with pytest.raises(ConfigError) as err:
        load(write, CONFIGURATION, ["main.max_children=many"])
    assert str(err.value) == "--config main.max_children: expected an integer >= 1, got 'many'"


def test_empty_overrides_unset(write):
    settings = load(write, CONFIGURATION, ["metadata_condition=", "metadata_set="])
    experimental = settings.targets["experimental"]
    assert experimental.metadata_set == frozenset()
    assert settings.master.metadata_condition is None


def test_override_password_keeps_spaces_and_percent(write):
    settings = load(write, CONFIGURATION, ["master.password= a%b c "])
    assert settings.master.credentials.password == " a%b c "


# -- the sample configuration -------------------------------------------------------------------


def test_the_sample_configuration_loads():
    settings = load_settings(str(REPO / "etc" / "glancesync.conf"),
                             environ={"OS_REGION_NAME": "RegionOne"})
    assert settings.master_region == "RegionOne"
    assert list(settings.targets) == ["master", "other"]
    other = settings.targets["other"]
    assert other.credentials.auth_url == "https://keystone.other.example.org:5000/v3"
    assert other.credentials.password == "fakepassword,ofcourse"
    assert other.ignore_regions == {"Sandbox"}
    assert other.list_images_timeout == 60
    assert other.metadata_condition(
        Image(id="1", name="a", properties={"type": "baseimages"}), frozenset()
    )
    assert settings.master.obsolete_syncprops == {"sdc_aware"}
    assert settings.master.metadata_condition is None
    assert settings.images_dir == "/var/lib/glance/images"


def test_a_misspelt_username_is_pointed_to_username_not_rename(write):
    path = write("[main]\nmaster_region = R\n[master]\nusernme = u\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert str(err.value) == (
        f"[{path}] section [master]: unknown option 'usernme' (did you mean 'username'?)"
    )
