"""INI file + [DEFAULT] inheritance + --config overrides + OS_* environment -> Settings.

Everything is parsed and validated here, once; the rest of the program only sees the
typed objects below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from glancesync.condition import Condition

DEFAULT_CONFIG_FILE = "/etc/glancesync.conf"
DEFAULT_IMAGES_DIR = "/var/lib/glance/images"


@dataclass(frozen=True)
class Credentials:
    """How to reach one target's Keystone (v3). ``cloud`` names a clouds.yaml entry."""

    auth_url: str | None = None
    username: str | None = None
    password: str | None = None
    project_name: str | None = None  # the old tool's "tenant" (a name)
    project_id: str | None = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    application_credential_id: str | None = None
    application_credential_secret: str | None = None
    cloud: str | None = None
    interface: str = "public"  # catalog interface for image endpoints
    cacert: str | None = None
    insecure: bool = False


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


@dataclass(frozen=True)
class Settings:
    master_region: str
    targets: dict[str, TargetConfig]  # always has "master"
    preferable_order: tuple[str, ...] = ()
    max_children: int = 1
    images_dir: str = DEFAULT_IMAGES_DIR
    source: str = "environment"  # the file the settings came from, for messages

    @property
    def master(self) -> TargetConfig:
        return self.targets["master"]


def load_settings(
    config_file: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the Settings; raises ConfigError (one line naming file/section/option)."""
    raise NotImplementedError
