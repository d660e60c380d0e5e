"""A target's Credentials -> keystoneauth1 auth plugin, TLS settings and catalog interface.

Three sources, never mixed field by field:

* credentials written in the configuration file: keystoneauth1's own plugin loaders
  (``v3password``, ``v3applicationcredential``) build the plugin;
* ``cloud = NAME`` in the file, or ``--os-cloud``: that clouds.yaml entry, exactly as
  openstacksdk reads it (secure.yaml, ``auth_type``, ``interface``, ``region_name``...);
  no OS_* variable is mixed in;
* the master target without credentials in the file: openstacksdk's loader, like
  python-openstackclient: ``OS_CLOUD`` names a clouds.yaml entry, else every ``OS_*``
  variable (``OS_AUTH_TYPE``, tokens, application credentials, domain ids...).

Error messages name options and variables, never their values (secrets).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import loading

from glancesync.config import interface_name, v3_auth_url
from glancesync.exceptions import ConfigError

if TYPE_CHECKING:
    from keystoneauth1.plugin import BaseAuthPlugin
    from openstack.config.cloud_region import CloudRegion

    from glancesync.config import Credentials

LOG = logging.getLogger("glancesync")

CLOUDS_YAML_PLACES = (
    "$OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml, "
    "/etc/openstack/clouds.yaml"
)
NO_CREDENTIALS = (
    "no OpenStack credentials: use --os-cloud NAME or export OS_CLOUD=NAME (an entry of "
    "clouds.yaml), source an openrc file (OS_AUTH_URL, OS_USERNAME...), or set them in "
    "[master] of the configuration file"
)


@dataclass(frozen=True)
class Access:
    """What a keystoneauth1 Session needs, plus names for messages (no secrets)."""

    auth: BaseAuthPlugin
    verify: bool | str
    cert: Any
    interface: str
    keystone: str  # "cloud 'x'" or the auth URL
    who: str  # "user 'u' (project 'p')", "application credential ID", "a token"...


def access(target: str, creds: Credentials) -> Access:
    """The auth plugin, TLS and interface of a target; ConfigError if unusable."""
    if creds.cloud or creds.from_environment:
        found = _from_openstack_config(target, creds.cloud)
    else:
        found = _from_file(target, creds)
    # TLS and interface written in the file beat those of clouds.yaml / OS_* variables.
    verify: bool | str = found.verify
    if creds.insecure:
        verify = False
    elif creds.cacert:
        verify = creds.cacert
    interface = creds.interface or found.interface
    return Access(found.auth, verify, found.cert, interface, found.keystone, found.who)


def cloud_region_name(cloud: str | None) -> str | None:
    """The region_name of a clouds.yaml entry (``None``: the one openstacksdk would pick).

    Used for the master region when nothing else names it; no authentication happens.
    """
    region = _get_one(_openstack_config(), cloud, validate=False, target="master")
    return region.region_name or None


# -- the configuration file -------------------------------------------------------------
def _from_file(target: str, creds: Credentials) -> Access:
    missing = creds.missing()
    if missing:
        # The CLI validates first, with hints naming the file's options
        # (config.validate_credentials); this is for callers building Credentials.
        raise ConfigError(
            f"Target {target}: incomplete Keystone credentials, missing {', '.join(missing)}"
        )
    assert creds.auth_url is not None
    if creds.auth_method == "application_credential":
        auth_type = "v3applicationcredential"
        options = {
            "auth_url": creds.auth_url,
            "application_credential_id": creds.application_credential_id,
            "application_credential_secret": creds.application_credential_secret,
        }
        who = f"application credential {creds.application_credential_id}"
    else:
        auth_type = "v3password"
        options = {
            "auth_url": creds.auth_url,
            "username": creds.username,
            "password": creds.password,
            **_domain("user", creds.user_domain_id, creds.user_domain_name),
        }
        if creds.project_id:
            options["project_id"] = creds.project_id
        else:
            options["project_name"] = creds.project_name
            options.update(_domain("project", creds.project_domain_id, creds.project_domain_name))
        who = f"user {creds.username!r} (project {creds.project_name or creds.project_id!r})"
    try:
        auth = loading.get_plugin_loader(auth_type).load_from_options(**options)
    except ksa_exc.ClientException as exc:
        raise ConfigError(f"Target {target}: {_one_line(exc)}") from None
    return Access(auth, True, None, "public", creds.auth_url, who)


def _domain(kind: str, domain_id: str | None, domain_name: str | None) -> dict[str, str]:
    # An id is exact; a name is looked up; neither: Keystone's "Default" domain, as the
    # openrc files Keystone generates assume.
    if domain_id:
        return {f"{kind}_domain_id": domain_id}
    return {f"{kind}_domain_name": domain_name or "Default"}


# -- clouds.yaml and OS_* variables (openstacksdk) -------------------------------------
def _openstack_config() -> Any:
    # openstacksdk is heavy to import; only targets using clouds.yaml/OS_* pay for it.
    from openstack.config import OpenStackConfig

    with warnings.catch_warnings():
        # openstacksdk announces its own deprecations: not the user's concern
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        return OpenStackConfig()


def _get_one(
    config: Any, cloud: str | None, validate: bool, target: str, **overrides: Any
) -> CloudRegion:
    from openstack import exceptions as sdk_exc

    where = _where(config, cloud)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return config.get_one(cloud=cloud, validate=validate, **overrides)
    except ksa_exc.MissingRequiredOptions as exc:
        if cloud is None and not _is_environment(config) and not _has_default_cloud(config):
            raise ConfigError(NO_CREDENTIALS) from None
        if cloud is None and _is_environment(config):
            names = [opt.argparse_envvars[0] for opt in exc.options if opt.argparse_envvars]
            raise ConfigError(
                f"Target {target}: incomplete credentials in the OS_* variables: missing "
                f"{', '.join(names)}"
            ) from None
        missing = ", ".join(f"auth.{opt.dest}" for opt in exc.options)
        raise ConfigError(f"Target {target}: {where}: missing {missing}") from None
    except sdk_exc.ConfigException as exc:
        text = _one_line(exc)
        if text.startswith("Cloud ") and text.endswith(" was not found."):
            if config.config_filename:
                text = f"no cloud {cloud!r} in {config.config_filename}"
            else:
                text = f"no clouds.yaml found ({CLOUDS_YAML_PLACES}) for cloud {cloud!r}"
            raise ConfigError(f"Target {target}: {text}") from None
        raise ConfigError(f"Target {target}: {where}: {text}") from None
    except (sdk_exc.SDKException, ksa_exc.ClientException, KeyError, ValueError) as exc:
        raise ConfigError(f"Target {target}: {where}: {_one_line(exc)}") from None


def _from_openstack_config(target: str, cloud: str | None) -> Access:
    config = _openstack_config()
    region = _get_one(config, cloud, validate=True, target=target)
    auth_config = region.config.get("auth") or {}
    url = auth_config.get("auth_url")
    if url:
        env = cloud is None and _is_environment(config)
        fixed = v3_auth_url(url, "OS_AUTH_URL" if env else f"{_where(config, cloud)} auth_url")
        if fixed != url:
            region = _get_one(config, cloud, validate=True, target=target, auth={"auth_url": fixed})
            auth_config = region.config.get("auth") or {}
    auth = region.get_auth()
    if auth is None:
        raise ConfigError(f"Target {target}: {_where(config, cloud)} has no usable auth")
    verify, cert = region.get_requests_verify_args()
    interface = interface_name(
        str(region.config.get("interface") or "public"), f"{_where(config, cloud)}: interface"
    )
    if cloud is None and _is_environment(config):
        keystone, name = str(auth_config.get("auth_url")), None
    else:
        name = cloud or str(config.default_cloud)
        keystone = f"cloud {name!r}"
    return Access(auth, verify, cert, interface, keystone, _who(region, name))


def _who(region: CloudRegion, cloud: str | None) -> str:
    if cloud:
        return f"cloud {cloud!r}"
    auth = region.config.get("auth") or {}
    auth_type = str(region.config.get("auth_type") or "password")
    if auth.get("application_credential_id"):
        return f"application credential {auth['application_credential_id']}"
    if "token" in auth_type:
        project = auth.get("project_name") or auth.get("project_id")
        return f"a token (project {project!r})"
    if auth.get("username") or auth.get("user_id"):
        user = auth.get("username") or auth.get("user_id")
        project = auth.get("project_name") or auth.get("project_id")
        return f"user {user!r} (project {project!r})"
    return f"the OS_* variables ({auth_type} authentication)"


def _where(config: Any, cloud: str | None) -> str:
    if cloud is None and _is_environment(config):
        return "the OS_* variables"
    return f"clouds.yaml cloud {cloud or config.default_cloud!r}"


def _has_default_cloud(config: Any) -> bool:
    """Whether openstacksdk picked a clouds.yaml entry by itself (the only one there)."""
    # Without any, it falls back to a built-in cloud named "defaults" with no credentials.
    return bool(config.config_filename) and config.default_cloud not in (None, "defaults")


def _is_environment(config: Any) -> bool:
    """Whether openstacksdk's default cloud is made of the OS_* variables."""
    return config.default_cloud == config.envvar_key


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
