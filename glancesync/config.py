"""INI file + [DEFAULT] inheritance + --config overrides + OS_* environment -> Settings.

Everything is parsed and validated here, once; the rest of the program only sees the
typed objects below.

Where a value comes from, most specific first (the first place that *has* the option
decides, even when its value is empty/``None``, which then means "unset": the built-in
default, or for the master's credentials the OS_* environment):

1. ``--config SECTION.OPTION=VALUE``
2. the option written in that section of the file
3. ``--config OPTION=VALUE`` (no section: it sets [DEFAULT])
4. the option in the file's [DEFAULT]
5. for the master target's credentials only: the OS_* environment variable
6. the built-in default

So a DEFAULT override beats DEFAULT in the file but not a value written explicitly in a
section (as in the 2015 tool, where ConfigParser looked at the section before DEFAULT).
"""

from __future__ import annotations

import ast
import base64
import binascii
import configparser
import difflib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from glancesync.condition import Condition
from glancesync.exceptions import ConfigError

LOG = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "/etc/glancesync.conf"
DEFAULT_IMAGES_DIR = "/var/lib/glance/images"
ENV_CONFIG_FILE = "GLANCESYNC_CONFIG"
ENVIRONMENT_SOURCE = "environment"

MAIN = "main"
MASTER = "master"
DEFAULT = "DEFAULT"
INTERFACES = ("public", "internal", "admin")

CREDENTIAL_FORMAT = "user,base64(password),keystone_url,tenant"


@dataclass(frozen=True)
class Credentials:
    """How to reach one target's Keystone (v3). ``cloud`` names a clouds.yaml entry.

    Which way to authenticate (see ``auth_method``): a clouds.yaml ``cloud`` when set;
    else, with ``from_environment`` (the master target when the file names no
    credentials), whatever openstacksdk finds in OS_CLOUD / the OS_* variables; else an
    application credential when its id or secret is set; else user + password. The
    sources are never mixed: the fields below come from the file only.
    """

    auth_url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    project_name: str | None = None  # the old tool's "tenant" (a name)
    project_id: str | None = None
    user_domain_name: str | None = None  # neither name nor id: "Default"
    project_domain_name: str | None = None
    user_domain_id: str | None = None
    project_domain_id: str | None = None
    application_credential_id: str | None = None
    application_credential_secret: str | None = field(default=None, repr=False)
    cloud: str | None = None
    interface: str | None = None  # catalog interface; None: the cloud's, else public
    cacert: str | None = None
    insecure: bool = False
    from_environment: bool = False

    @property
    def auth_method(self) -> str:
        """``"cloud"``, ``"environment"``, ``"application_credential"`` or ``"password"``."""
        if self.cloud:
            return "cloud"
        if self.from_environment:
            return "environment"
        if self.application_credential_id or self.application_credential_secret:
            return "application_credential"
        return "password"

    def missing(self) -> list[str]:
        """Names of the fields still needed to authenticate (empty list: complete).

        A clouds.yaml cloud and the OS_* variables are taken as complete: openstacksdk
        reports their gaps when they are loaded.
        """
        method = self.auth_method
        if method in ("cloud", "environment"):
            return []
        if method == "application_credential":
            needed = ("auth_url", "application_credential_id", "application_credential_secret")
            return [name for name in needed if not getattr(self, name)]
        absent = [n for n in ("auth_url", "username", "password") if not getattr(self, n)]
        if not (self.project_name or self.project_id):
            absent.append("project_name")
        return absent


@dataclass(frozen=True)
class TargetConfig:
    name: str
    credentials: Credentials = field(default_factory=Credentials)
    forcesyncs: frozenset[str] = frozenset()
    replace: frozenset[str] = frozenset()
    rename: frozenset[str] = frozenset()
    dontupdate: frozenset[str] = frozenset()
    ignore_regions: frozenset[str] = frozenset()
    metadata_condition: Condition | None = None
    metadata_set: frozenset[str] = frozenset()
    only_tenant_images: bool = True
    tenant_id: str | None = None
    obsolete_syncprops: frozenset[str] = frozenset()
    support_obsolete_images: bool = True
    list_images_timeout: int = 30
    transfer_timeout: int = 600  # seconds of silence allowed during an upload or delete
    retries: int = 3  # of a request that failed transiently (connection, 502/503/504)
    # Let a region whose Glance offers glance-download pull the image from the master
    # itself (same Keystone only); False: always stream the bytes through glancesync.
    server_side_copy: bool = True

    @property
    def is_master(self) -> bool:
        return self.name == MASTER


@dataclass(frozen=True)
class Settings:
    master_region: str
    targets: dict[str, TargetConfig]  # always has "master", listed first
    preferable_order: tuple[str, ...] = ()
    max_children: int = 1
    images_dir: str = DEFAULT_IMAGES_DIR
    source: str = ENVIRONMENT_SOURCE  # the file the settings came from, for messages

    @property
    def master(self) -> TargetConfig:
        return self.targets[MASTER]

    def get_target(self, name: str) -> TargetConfig:
        """The target named ``name``; ConfigError listing the known ones otherwise."""
        try:
            return self.targets[name]
        except KeyError:
            known = ", ".join(self.targets)
            raise ConfigError(f"unknown target '{name}' (known targets: {known})") from None


# ------------------------------------------------------------------------------------
# Credential validation (called by the OpenStack facade, not at load time: offline
# runs need no credentials at all)
# ------------------------------------------------------------------------------------

# field -> what to set in the file
_CREDENTIAL_HINTS: dict[str, str] = {
    "auth_url": f"keystone_url (or the 3rd field of credential = {CREDENTIAL_FORMAT})",
    "username": f"user (or the 1st field of credential = {CREDENTIAL_FORMAT})",
    "password": f"password (or the 2nd, base64 field of credential = {CREDENTIAL_FORMAT})",
    "project_name": f"tenant or project_id (or the 4th field of credential = "
    f"{CREDENTIAL_FORMAT})",
    "application_credential_id": "application_credential_id",
    "application_credential_secret": "application_credential_secret",
}


def validate_credentials(settings: Settings, target: str | TargetConfig) -> Credentials:
    """The target's credentials if complete, else ConfigError saying what to set where."""
    config = settings.get_target(target) if isinstance(target, str) else target
    creds = config.credentials
    absent = creds.missing()
    if not absent:
        return creds
    hints = [f"{name} (set {_CREDENTIAL_HINTS[name]} in [{config.name}])" for name in absent]
    # The file's credentials are never completed from OS_* variables (that would mix two
    # identities): say how to use the environment instead.
    alternative = (
        "; or remove the credentials from [master] to use OS_CLOUD/--os-cloud (clouds.yaml) "
        "or the OS_* variables"
        if config.is_master
        else ""
    )
    raise ConfigError(
        f"{_where(settings.source, config.name)}: incomplete Keystone credentials "
        f"({creds.auth_method} authentication): missing {'; '.join(hints)}{alternative}"
    )


def _where(source: str, section: str) -> str:
    if source == ENVIRONMENT_SOURCE:
        return f"target [{section}] (no configuration file)"
    return f"[{source}] section [{section}]"


# ------------------------------------------------------------------------------------
# Raw values and their parsers
# ------------------------------------------------------------------------------------


class _Unset:
    """An option present but empty or ``None``: use the built-in default."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
_NOT_PARSED = object()


@dataclass
class _Value:
    option: str
    raw: str
    origin: str  # "[FILE] section [S] option O" or "--config KEY", never the value
    parsed: Any = _NOT_PARSED


def _lines(raw: str, keep_final_backslash: bool = False) -> list[str]:
    """Physical lines, stripped, with a trailing continuation ``\\`` removed (the 2015 format)."""
    lines = raw.split("\n")
    out = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if line.endswith("\\") and not (keep_final_backslash and number == len(lines)):
            line = line[:-1].rstrip()
        out.append(line)
    return out


def _text(value: _Value, sep: str = "") -> str | _Unset:
    text = sep.join(line for line in _lines(value.raw) if line).strip()
    return UNSET if text in ("", "None") else text


def _parse_str(value: _Value) -> str | _Unset:
    return _text(value)


def _parse_secret(value: _Value) -> str | _Unset:
    # Secrets are verbatim: no "None" rule, no stripping of a one-line value (an
    # override may carry meaningful spaces), and a final backslash may be part of it.
    if "\n" not in value.raw:
        return value.raw if value.raw else UNSET
    text = "".join(_lines(value.raw, keep_final_backslash=True))
    return text if text else UNSET


def _csv_items(value: _Value) -> list[str] | _Unset:
    if _text(value) is UNSET:
        return UNSET
    items = []
    for line in _lines(value.raw):
        items.extend(item.strip() for item in line.split(","))
    return [item for item in items if item]  # decision: "a,,b" -> {a, b}


def _parse_set(value: _Value) -> frozenset[str] | _Unset:
    items = _csv_items(value)
    return UNSET if items is UNSET else frozenset(items)


def _parse_ordered(value: _Value) -> tuple[str, ...] | _Unset:
    items = _csv_items(value)
    return UNSET if items is UNSET else tuple(dict.fromkeys(items))


_BOOLEANS = {"1": True, "yes": True, "true": True, "on": True,
             "0": False, "no": False, "false": False, "off": False}


def _parse_bool(value: _Value) -> bool | _Unset:
    text = _text(value)
    if text is UNSET:
        return UNSET
    try:
        return _BOOLEANS[text.lower()]
    except KeyError:
        raise ConfigError(
            f"{value.origin}: expected a boolean (yes/no, true/false, on/off, 1/0), "
            f"got {text!r}"
        ) from None


def _int_parser(minimum: int) -> Callable[[_Value], int | _Unset]:
    def parse(value: _Value) -> int | _Unset:
        text = _text(value)
        if text is UNSET:
            return UNSET
        try:
            number = int(text)
        except ValueError:
            number = None
        if number is None or number < minimum:
            raise ConfigError(
                f"{value.origin}: expected an integer >= {minimum}, got {text!r}"
            )
        return number

    return parse


def _parse_interface(value: _Value) -> str | _Unset:
    text = _text(value)
    if text is UNSET:
        return UNSET
    return interface_name(text, value.origin)


def interface_name(text: str, origin: str) -> str:
    """public/internal/admin from any spelling OpenStack tools accept (``internalURL``)."""
    word = text.strip().lower()
    word = word[:-3] if word.endswith("url") else word  # legacy publicURL, internalURL
    if word not in INTERFACES:
        raise ConfigError(f"{origin}: expected one of {', '.join(INTERFACES)}, got {text!r}")
    return word


def _parse_condition(value: _Value) -> Condition | _Unset:
    # Continuation lines are joined with a space: the expression reads as one line.
    text = _text(value, sep=" ")
    return UNSET if text is UNSET else Condition(text, value.origin)


def _parse_credential(value: _Value) -> tuple[str | None, ...] | _Unset:
    """``user,base64(password),keystone_url,tenant`` -> its four parts (None if empty)."""
    text = _text(value)
    if text is UNSET:
        return UNSET
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != 4:
        raise ConfigError(
            f"{value.origin}: expected {CREDENTIAL_FORMAT} (4 comma-separated fields), "
            f"found {len(parts)} fields"
        )
    user, encoded, url, tenant = parts
    password = None
    if encoded:
        try:
            password = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            # Never echo the field: it is the (barely) hidden password.
            raise ConfigError(
                f"{value.origin}: the 2nd field (the password) is not valid base64 "
                "of a UTF-8 text; encode it with: printf %s 'PASSWORD' | base64"
            ) from None
    return (user or None, password, url or None, tenant or None)


_MAIN_PARSERS: dict[str, Callable[[_Value], Any]] = {
    "master_region": _parse_str,
    "preferable_order": _parse_ordered,
    "max_children": _int_parser(1),
    "images_dir": _parse_str,
}
_CREDENTIAL_PARSERS: dict[str, Callable[[_Value], Any]] = {
    "credential": _parse_credential,
    "user": _parse_str,
    "username": _parse_str,  # the clouds.yaml / OS_USERNAME spelling of user
    "password": _parse_secret,
    "keystone_url": _parse_str,
    "auth_url": _parse_str,  # ... of keystone_url
    "tenant": _parse_str,
    "project_name": _parse_str,  # ... of tenant
    "project_id": _parse_str,
    "user_domain_name": _parse_str,
    "project_domain_name": _parse_str,
    "user_domain_id": _parse_str,
    "project_domain_id": _parse_str,
    "interface": _parse_interface,
    "region_interface": _parse_interface,
    "cacert": _parse_str,
    "insecure": _parse_bool,
    "cloud": _parse_str,
    "application_credential_id": _parse_str,
    "application_credential_secret": _parse_secret,
}
_TARGET_PARSERS: dict[str, Callable[[_Value], Any]] = {
    **_CREDENTIAL_PARSERS,
    "forcesyncs": _parse_set,
    "replace": _parse_set,
    "rename": _parse_set,
    "dontupdate": _parse_set,
    "ignore_regions": _parse_set,
    "metadata_set": _parse_set,
    "obsolete_syncprops": _parse_set,
    "metadata_condition": _parse_condition,
    "only_tenant_images": _parse_bool,
    "tenant_id": _parse_str,
    "support_obsolete_images": _parse_bool,
    "list_images_timeout": _int_parser(1),
    "transfer_timeout": _int_parser(1),
    "retries": _int_parser(0),
    "server_side_copy": _parse_bool,
    "use_keystone_v3": _parse_bool,  # accepted for old files; v3 is the only one
}
_PARSERS = {**_MAIN_PARSERS, **_TARGET_PARSERS}

MAIN_OPTIONS = frozenset(_MAIN_PARSERS)
TARGET_OPTIONS = frozenset(_TARGET_PARSERS)


def _parsed(value: _Value) -> Any:
    if value.parsed is _NOT_PARSED:
        value.parsed = _PARSERS[value.option](value)
    return value.parsed


# ------------------------------------------------------------------------------------
# Layers: overrides and file, per section, with DEFAULT inheritance
# ------------------------------------------------------------------------------------

_Section = dict[str, _Value]


@dataclass
class _Layers:
    source: str
    file: dict[str, _Section] = field(default_factory=dict)
    overrides: dict[str, _Section] = field(default_factory=dict)

    def sections(self) -> list[str]:
        names = dict.fromkeys([*self.file, *self.overrides])
        return [name for name in names if name != DEFAULT]

    def chain(self, section: str) -> list[_Section]:
        """Where to look for an option of ``section``, most specific first."""
        order = [(self.overrides, section), (self.file, section)]
        if section != DEFAULT:
            order += [(self.overrides, DEFAULT), (self.file, DEFAULT)]
        return [layer[name] for layer, name in order if name in layer]

    def values(self) -> Iterable[_Value]:
        for layer in (self.file, self.overrides):
            for options in layer.values():
                yield from options.values()


def _lookup(chain: list[_Section], *options: str) -> _Value | None:
    """The most specific value of any of ``options`` (earlier options win in a layer)."""
    for layer in chain:
        for option in options:
            if option in layer:
                return layer[option]
    return None


def _get(chain: list[_Section], option: str, default: Any = None) -> Any:
    value = _lookup(chain, option)
    if value is None:
        return default
    result = _parsed(value)
    return default if result is UNSET else result


def _check_option(section: str, option: str, where: str) -> None:
    if section == MAIN:
        allowed, misplaced = MAIN_OPTIONS, TARGET_OPTIONS
    elif section == DEFAULT:
        allowed, misplaced = MAIN_OPTIONS | TARGET_OPTIONS, frozenset()
    else:
        allowed, misplaced = TARGET_OPTIONS, MAIN_OPTIONS
    if option in allowed:
        return
    if option in misplaced and section == MAIN:
        raise ConfigError(
            f"{where}: '{option}' is a per-target option: set it in [DEFAULT] or in a "
            "target section, not in [main]"
        )
    if option in misplaced:
        raise ConfigError(f"{where}: '{option}' belongs in [main], not in a target section")
    if len(option.split()) > 1:
        # "password s3cr3t: x" is read as an option named "password s3cr3t": a line
        # whose '=' is missing. Its first word only: the rest may be a secret.
        word = option.split()[0]
        where = where.replace(option, f"{word} ...")
        raise ConfigError(
            f"{where}: '{word} ...' is not 'option = value' (value not shown)"
        )
    close = difflib.get_close_matches(option, sorted(allowed), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"{where}: unknown option '{option}'{hint}")


def _check_section_name(name: str, source: str) -> None:
    if name == "DEFAULTS":
        raise ConfigError(
            f"[{source}]: section [DEFAULTS] is not allowed (did you mean [DEFAULT]?)"
        )
    if not name.strip() or ":" in name:
        # "target:region" is how regions of a target are named on the command line.
        raise ConfigError(f"[{source}]: invalid section name [{name}]: no ':' and not empty")


# ------------------------------------------------------------------------------------
# Reading the file and the overrides
# ------------------------------------------------------------------------------------


def _resolve_file(config_file: str | None, environ: Mapping[str, str]) -> str | None:
    if config_file is not None:
        return config_file
    from_env = environ.get(ENV_CONFIG_FILE)
    if from_env:
        return from_env
    if os.path.exists(DEFAULT_CONFIG_FILE):
        return DEFAULT_CONFIG_FILE
    return None


def _read_text(path: str, config_file: str | None) -> str:
    how = "" if config_file is not None or path == DEFAULT_CONFIG_FILE else (
        f" (named by {ENV_CONFIG_FILE})"
    )
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except OSError as exc:
        raise ConfigError(
            f"cannot read configuration file {path}{how}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {path}{how} is not UTF-8 text: {exc}") from None


def _read_file(path: str, text: str) -> dict[str, _Section]:
    # No interpolation: '%' is legal in passwords and conditions. A default_section
    # name that cannot occur makes [DEFAULT] an ordinary section: inheritance is done
    # by _Layers, so that overrides can slot in between the section and DEFAULT.
    parser = configparser.ConfigParser(
        interpolation=None, default_section="\0no-default\0", strict=True
    )
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(f"[{path}]: cannot parse: {_parse_error(exc)}") from None
    sections: dict[str, _Section] = {}
    for name in parser.sections():
        _check_section_name(name, path)
        options: _Section = {}
        for option, raw in parser.items(name, raw=True):
            where = f"[{path}] section [{name}]"
            _check_option(name, option, where)
            options[option] = _Value(option, raw or "", f"{where} option {option}")
        for alias, option in ALIASES.items():
            if alias in options and option in options:
                raise ConfigError(
                    f"{where}: both '{option}' and '{alias}' (the same option): keep one"
                )
        sections[name] = options
    return sections


# Options whose value is a secret: never shown in any message, even a line that could
# not be parsed (``password s3cr3t`` without its '=').
SECRET_OPTIONS = frozenset({"password", "credential", "application_credential_secret"})


def _parse_error(exc: configparser.Error) -> str:
    """configparser's message without the text of the lines (a secret could be there)."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return (
            f"line {exc.lineno}: {_shown_line(exc.line)} comes before any [section] header "
            "(the file starts with [main] or [DEFAULT])"
        )
    if isinstance(exc, configparser.ParsingError):
        return "; ".join(
            # configparser keeps repr(line) there
            f"line {lineno}: {_shown_line(_unrepr(line))} is not 'option = value'"
            for lineno, line in exc.errors
        )
    if isinstance(exc, (configparser.DuplicateOptionError, configparser.DuplicateSectionError)):
        # names only: "option 'password' in section 'master' already exists"
        return " ".join(str(exc).split())
    return type(exc).__name__


def _unrepr(text: str) -> str:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return value if isinstance(value, str) else text


def _shown_line(line: str) -> str:
    """A line as it may be shown: whole when it starts with a known option that is no
    secret (or a section header), else only its first word when that is an option."""
    text = line.strip()
    word = re.split(r"[\s=:]", text, maxsplit=1)[0].lower()
    if text.startswith("[") or (word in _PARSERS and word not in SECRET_OPTIONS):
        return repr(text)
    if word in SECRET_OPTIONS:
        return f"'{word} ...' (value not shown)"
    return "a line (not shown: it may hold a secret)"


def _apply_overrides(layers: _Layers, overrides: Iterable[str]) -> None:
    for token in overrides:
        key, sep, raw = token.partition("=")  # the first '=' only: values may hold '='
        key = key.strip()
        if not sep:
            raise ConfigError(f"--config expects key=value, got {token!r}")
        if not key:  # the value is not shown: it may be a secret
            raise ConfigError("--config expects key=value, got a value with no key before '='")
        section, dot, option = key.partition(".")  # first dot only: 'a.b.c' -> [a] b.c
        if not dot:
            section, option = DEFAULT, key
        section, option = section.strip(), option.strip().lower()
        known = [DEFAULT, MAIN, MASTER, *(s for s in layers.sections() if s not in (MAIN, MASTER))]
        if section not in known:
            raise ConfigError(
                f"--config {key}: there is no section [{section}] in "
                f"{_source_label(layers.source)} (known sections: {', '.join(known)})"
            )
        _check_option(section, option, f"--config {key}")
        layers.overrides.setdefault(section, {})[option] = _Value(option, raw, f"--config {key}")


def _source_label(source: str) -> str:
    return "the configuration (no file)" if source == ENVIRONMENT_SOURCE else source


# ------------------------------------------------------------------------------------
# Building the typed objects
# ------------------------------------------------------------------------------------

# Credentials field -> (plain options, the old name first, then the clouds.yaml spelling;
# index in the `credential` value)
_CREDENTIAL_PARTS = {
    "username": (("user", "username"), 0),
    "password": (("password",), 1),
    "auth_url": (("keystone_url", "auth_url"), 2),
    "project_name": (("tenant", "project_name"), 3),
}
ALIASES = {"username": "user", "auth_url": "keystone_url", "project_name": "tenant"}
# Credentials field -> option, for the fields that only exist as plain options
_PLAIN_CREDENTIALS = {
    "project_id": "project_id",
    "user_domain_name": "user_domain_name",
    "project_domain_name": "project_domain_name",
    "user_domain_id": "user_domain_id",
    "project_domain_id": "project_domain_id",
    "cacert": "cacert",
    "cloud": "cloud",
    "application_credential_id": "application_credential_id",
    "application_credential_secret": "application_credential_secret",
}
# The fields that say who authenticates: when the file gives any of them, the file's
# credentials are used as a whole. Domains, TLS and interface only qualify them.
_IDENTITY = ("username", "password", "auth_url", "project_name", "project_id", "cloud",
             "application_credential_id", "application_credential_secret")
# What qualifies any credentials, whichever their source.
_CONNECTION = ("interface", "cacert", "insecure")


def _credential_part(chain: list[_Section], options: tuple[str, ...], index: int) -> str | None:
    # In each layer a plain option beats the matching field of `credential`; a more
    # specific layer beats a less specific one whichever form it uses.
    value = _lookup(chain, *options, "credential")
    if value is None:
        return None
    result = _parsed(value)
    if result is UNSET:
        return None
    return result[index] if value.option == "credential" else result


def _file_credentials(chain: list[_Section]) -> dict[str, Any]:
    found: dict[str, Any] = {
        name: _credential_part(chain, options, index)
        for name, (options, index) in _CREDENTIAL_PARTS.items()
    }
    found.update({name: _get(chain, option) for name, option in _PLAIN_CREDENTIALS.items()})
    interface = _lookup(chain, "interface", "region_interface")
    found["interface"] = None if interface is None else _none_if_unset(_parsed(interface))
    found["insecure"] = _get(chain, "insecure")
    return found


def _none_if_unset(value: Any) -> Any:
    return None if value is UNSET else value


V2_SUFFIXES = ("/v2.0", "/v2.0/", "/v2", "/v2/")


def v3_auth_url(url: str, origin: str) -> str:
    """A Keystone v2.0 URL (2015 configurations) mapped to v3, with a warning."""
    for suffix in V2_SUFFIXES:
        if url.endswith(suffix):
            fixed = url[: -len(suffix)] + "/v3"
            LOG.warning(
                "%s: %s is a Keystone v2.0 URL; glancesync uses Keystone v3: using %s",
                origin, url, fixed,
            )
            return fixed
    return url


def _credentials(
    name: str, found: dict[str, Any], layers: _Layers, environ: Mapping[str, str],
    os_cloud: str | None,
) -> Credentials:
    connection = {key: found[key] for key in _CONNECTION if found.get(key) is not None}
    if name == MASTER and os_cloud:
        # The command line names the master's credentials: nothing from the file's.
        return Credentials(cloud=os_cloud, **connection)
    if name == MASTER and not any(found.get(key) for key in _IDENTITY):
        # No credentials in the file: openstacksdk reads OS_CLOUD (a clouds.yaml entry,
        # used as written) or else the OS_* variables, as python-openstackclient does.
        return Credentials(
            cloud=environ.get("OS_CLOUD") or None, from_environment=True, **connection
        )
    if found.get("auth_url"):
        origin = f"{_where(layers.source, name)} keystone_url"
        found = {**found, "auth_url": v3_auth_url(found["auth_url"], origin)}
    values = {key: value for key, value in found.items() if value is not None}
    return Credentials(**values)


def _build_target(
    name: str, layers: _Layers, environ: Mapping[str, str], os_cloud: str | None = None
) -> TargetConfig:
    chain = layers.chain(name)
    found = _file_credentials(chain)
    if name != MASTER and not any(found.get(key) for key in _IDENTITY):
        raise ConfigError(
            f"{_where(layers.source, name)}: no credential: set credential = "
            f"{CREDENTIAL_FORMAT} (or user/password/keystone_url/tenant, or cloud = NAME)"
        )
    sets = ("forcesyncs", "replace", "rename", "dontupdate", "ignore_regions",
            "metadata_set", "obsolete_syncprops")
    return TargetConfig(
        name=name,
        credentials=_credentials(name, found, layers, environ, os_cloud),
        metadata_condition=_get(chain, "metadata_condition"),
        only_tenant_images=_get(chain, "only_tenant_images", True),
        tenant_id=_get(chain, "tenant_id"),
        support_obsolete_images=_get(chain, "support_obsolete_images", True),
        list_images_timeout=_get(chain, "list_images_timeout", 30),
        transfer_timeout=_get(chain, "transfer_timeout", 600),
        retries=_get(chain, "retries", 3),
        server_side_copy=_get(chain, "server_side_copy", True),
        **{option: _get(chain, option, frozenset()) for option in sets},
    )


def _master_region(layers: _Layers, environ: Mapping[str, str], master: Credentials) -> str:
    """[main] master_region; else the region that comes with the master's credentials.

    A cloud named in the file brings its region_name (before OS_REGION_NAME, which may
    come from an unrelated openrc); with OS_CLOUD/--os-cloud, OS_REGION_NAME picks the
    region as it does for the openstack command, and the cloud's region_name is the
    fallback.
    """
    region = _get(layers.chain(MAIN), "master_region")
    if region:
        return region
    from_cloud = master.cloud and not master.from_environment
    if from_cloud:
        region = _cloud_region(master.cloud)
    region = region or environ.get("OS_REGION_NAME")
    if not region and master.from_environment and (master.cloud or not _has_os_auth(environ)):
        region = _cloud_region(master.cloud)
    if not region:
        where = "the configuration" if layers.source == ENVIRONMENT_SOURCE else layers.source
        raise ConfigError(
            f"master_region is not set: add master_region to [main] in {where}, "
            "export OS_REGION_NAME, or give the cloud a region_name in clouds.yaml"
        )
    return region


def _has_os_auth(environ: Mapping[str, str]) -> bool:
    # openstacksdk makes a cloud of the OS_* variables when one of them is more than a
    # selector; then no clouds.yaml entry is involved.
    selectors = {"OS_CLOUD", "OS_REGION_NAME", "OS_CLIENT_CONFIG_FILE",
                 "OS_CLIENT_SECURE_FILE", "OS_CLOUD_NAME"}
    return any(key.startswith("OS_") and key not in selectors for key in environ)


def _cloud_region(cloud: str | None) -> str | None:
    # Only here (no master_region anywhere) does loading the settings read clouds.yaml.
    from glancesync.facade.keystone import cloud_region_name

    return cloud_region_name(cloud)


def _validate_all_values(layers: _Layers) -> None:
    """Parse every value given, used or shadowed, so that no mistake goes unreported."""
    warned = False
    for value in layers.values():
        result = _parsed(value)
        if value.option == "use_keystone_v3" and result is False and not warned:
            LOG.warning("%s: ignored, glancesync always uses Keystone v3", value.origin)
            warned = True


def load_settings(
    config_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
    os_cloud: str | None = None,
) -> Settings:
    """Build the Settings; raises ConfigError (one line naming file/section/option).

    The file is ``config_file`` (``--config-file``), else $GLANCESYNC_CONFIG, else
    /etc/glancesync.conf if it exists, else none (environment only). ``os_cloud``
    (``--os-cloud``) replaces the master's credentials. Credentials are not checked here
    (offline runs need none): see ``validate_credentials``.
    """
    env = os.environ if environ is None else environ
    path = _resolve_file(config_file, env)
    layers = _Layers(source=path if path is not None else ENVIRONMENT_SOURCE)
    if path is not None:
        layers.file = _read_file(path, _read_text(path, config_file))
    _apply_overrides(layers, overrides)
    _validate_all_values(layers)

    main = layers.chain(MAIN)
    names = [MASTER, *(s for s in layers.sections() if s not in (MAIN, MASTER))]
    targets = {name: _build_target(name, layers, env, os_cloud) for name in names}
    return Settings(
        master_region=_master_region(layers, env, targets[MASTER].credentials),
        targets=targets,
        preferable_order=_get(main, "preferable_order", ()),
        max_children=_get(main, "max_children", 1),
        images_dir=_get(main, "images_dir", DEFAULT_IMAGES_DIR),
        source=layers.source,
    )
