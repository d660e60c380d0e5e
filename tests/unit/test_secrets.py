"""No secret in any message: parse errors of the configuration file and of --config
show option names, never the values of credential options."""

from __future__ import annotations

import pytest

from glancesync.cli import main
from glancesync.config import load_settings
from glancesync.exceptions import ConfigError

SECRET = "s3cr3t-Val"

HEAD = "[main]\nmaster_region = Valladolid\n[master]\nuser = syncadmin\n"


@pytest.mark.parametrize(
    "text",
    [
        HEAD + f"password {SECRET}\n",
        HEAD + f"application_credential_secret {SECRET}\n",
        HEAD + f"credential syncadmin,{SECRET},http://k/v3,t\n",
        f"password = {SECRET}\n" + HEAD,  # before any section header
        HEAD + f"{SECRET}\n",  # a stray line: maybe the second half of a password
        HEAD + f"  password = x\n[other\n{SECRET}\n",
    ],
)
def test_parse_errors_never_show_a_secret(tmp_path, capsys, text):
    path = tmp_path / "glancesync.conf"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(str(path), environ={})
    assert SECRET.lower() not in str(err.value).lower()
    assert "cannot parse: line" in str(err.value) or "value not shown" in str(err.value)
    code = main(["--config-file", str(path), "--show-status"])
    captured = capsys.readouterr()
    assert code == 2
    assert SECRET.lower() not in (captured.out + captured.err).lower()
    assert len((captured.out + captured.err).strip().splitlines()) == 1


def test_a_parse_error_of_an_ordinary_option_shows_the_line(tmp_path):
    path = tmp_path / "glancesync.conf"
    path.write_text("[main]\nmaster_region Valladolid\n")
    with pytest.raises(ConfigError, match="line 2: 'master_region Valladolid' is not"):
        load_settings(str(path), environ={})


def test_an_override_without_a_key_does_not_show_its_value():
    with pytest.raises(ConfigError) as err:
        load_settings(None, [f"={SECRET}"], environ={"OS_REGION_NAME": "R"})
    assert SECRET not in str(err.value)
    assert "no key before '='" in str(err.value)
