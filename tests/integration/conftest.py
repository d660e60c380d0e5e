"""Fixtures of the integration tests: a real Keystone + Glance test bed (see testbed.py).

``testbed`` (session) starts two Keystones and four Glance APIs once per test session and
stops them at the end; ``clean_glance`` (autouse) deletes every image in every region of both
clouds before each test.  Every test here is marked ``integration``.

GLANCESYNC_TESTBED_SKIP=1 skips these tests; otherwise a test bed that cannot start fails
the run.  GLANCESYNC_TESTBED_BASE=<dir> (printed by ``testbed.py up``) reuses a running one
instead of starting another (it is left running).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from glanceclient import Client as GlanceClient
from glanceclient import exc as glance_exc
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

try:  # tests/integration as a package (rootdir-relative imports) or on sys.path (default)
    from . import testbed as tb
except ImportError:
    import testbed as tb

HERE = Path(__file__).resolve().parent
SKIP = os.environ.get("GLANCESYNC_TESTBED_SKIP") == "1"

# cloud names accepted by the helpers: the tenant on Keystone 1, the target user on
# Keystone 2, and the admin of each (used to clean up)
CLOUD_ENVS = {
    "master": "env",
    "target": "target_env",
    "admin": "admin_env",
    "target-admin": "target_admin_env",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
            if SKIP:
                item.add_marker(pytest.mark.skip(reason="GLANCESYNC_TESTBED_SKIP=1"))


class TestBedFixture:
    """The running :class:`testbed.TestBed` plus glanceclient helpers.

    Attributes of the bed (``env``, ``target_env``, ``admin_env``, ``target_admin_env``,
    ``regions``, ``target_regions``, ``base``, ``glance_url(region)``) are available here too.
    ``cloud`` is "master" (tenant on Keystone 1, default), "target" (target user on Keystone
    2), "admin" or "target-admin".
    """

    __test__ = False

    def __init__(self, bed: tb.TestBed) -> None:
        self.bed = bed
        self._sessions: dict[str, ksa_session.Session] = {}
        self._clients: dict[tuple[str, str], Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name == "bed":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.bed, name)

    def cloud_env(self, cloud: str = "master") -> dict[str, str]:
        try:
            return getattr(self.bed, CLOUD_ENVS[cloud])
        except KeyError:
            raise ValueError(f"unknown cloud {cloud!r}; one of {sorted(CLOUD_ENVS)}") from None

    def cloud_regions(self, cloud: str = "master") -> list[str]:
        return self.bed.target_regions if cloud.startswith("target") else self.bed.regions

    def keystone_session(self, cloud: str = "master") -> ksa_session.Session:
        """A keystoneauth1 session (password auth, project scope) for ``cloud``; cached."""
        if cloud not in self._sessions:
            env = self.cloud_env(cloud)
            auth = v3.Password(
                auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"],
                password=env["OS_PASSWORD"], project_name=env["OS_PROJECT_NAME"],
                user_domain_name=env["OS_USER_DOMAIN_NAME"],
                project_domain_name=env["OS_PROJECT_DOMAIN_NAME"])
            self._sessions[cloud] = ksa_session.Session(auth=auth)
        return self._sessions[cloud]

    def glance(self, region: str, cloud: str = "master") -> Any:
        """A glanceclient v2 Client for ``region`` (endpoint from ``cloud``'s catalog)."""
        if region not in self.cloud_regions(cloud):
            raise ValueError(f"region {region!r} is not in the {cloud} cloud "
                             f"({self.cloud_regions(cloud)})")
        key = (cloud, region)
        if key not in self._clients:
            self._clients[key] = GlanceClient("2", session=self.keystone_session(cloud),
                                              region_name=region, interface="public")
        return self._clients[key]

    def create_image(self, region: str, name: str, data: bytes | None = b"",
                     cloud: str = "master", **props: Any) -> dict:
        """Create an image (raw/bare unless given) with ``props``, upload ``data``, return it.

        ``data=None`` leaves it queued (no upload).  Other properties (visibility,
        protected, custom ones such as nid="123") go to the create call.
        """
        g = self.glance(region, cloud)
        props.setdefault("disk_format", "raw")
        props.setdefault("container_format", "bare")
        image = g.images.create(name=name, **props)
        if data is not None:
            g.images.upload(image["id"], io.BytesIO(data), image_size=len(data))
            return self.wait_image(region, image["id"], cloud=cloud)
        return dict(g.images.get(image["id"]))

    def wait_image(self, region: str, image_id: str, status: str = "active",
                   cloud: str = "master", timeout: float = 60) -> dict:
        g = self.glance(region, cloud)
        deadline = time.monotonic() + timeout
        while True:
            image = dict(g.images.get(image_id))
            if image["status"] == status:
                return image
            if image["status"] in ("killed", "deleted") or time.monotonic() > deadline:
                raise AssertionError(f"image {image_id} in {region}: status {image['status']}, "
                                     f"wanted {status}")
            time.sleep(0.2)

    def list_images(self, region: str, cloud: str = "master") -> list[dict]:
        """Every image ``cloud`` can list in ``region``, hidden ones (os_hidden) included."""
        g = self.glance(region, cloud)
        seen: dict[str, dict] = {}
        for filters in ({}, {"os_hidden": True}):
            for image in g.images.list(filters=filters):
                seen.setdefault(image["id"], dict(image))
        return list(seen.values())

    def download(self, region: str, image_id: str, cloud: str = "master") -> bytes:
        body = self.glance(region, cloud).images.data(image_id)
        if body is None or getattr(body, "__wrapped__", body) is None:  # no data (204)
            return b""
        return b"".join(body)

    def delete_all_images(self) -> None:
        """Delete every image of every project in every region of both clouds (as admin)."""
        for admin, regions in (("admin", self.bed.regions),
                               ("target-admin", self.bed.target_regions)):
            for region in regions:
                g = self.glance(region, admin)
                for image in self._all_images(g):
                    if image.get("protected"):
                        g.images.update(image["id"], protected=False)
                    self._delete(g, image["id"])
                left = [(i["id"], i["name"], i["status"]) for i in self._all_images(g)]
                if left:
                    raise AssertionError(f"images left in {region} after clean-up: {left}")

    @staticmethod
    def _delete(g: Any, image_id: str, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                g.images.delete(image_id)
                return
            except glance_exc.HTTPNotFound:
                return
            except glance_exc.HTTPConflict:  # e.g. an import task still holds it
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    @staticmethod
    def _all_images(g: Any) -> list[dict]:
        seen: dict[str, dict] = {}
        for hidden in (False, True):
            for image in g.images.list(filters={"visibility": "all", "os_hidden": hidden}):
                seen.setdefault(image["id"], dict(image))
        return list(seen.values())


def _bypass_proxies() -> None:
    """Loopback requests must not go through a proxy the environment may name."""
    if any(os.environ.get(k) for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY")):
        for key in ("no_proxy", "NO_PROXY"):
            current = [h for h in os.environ.get(key, "").split(",") if h]
            os.environ[key] = ",".join(current + ["127.0.0.1", "localhost"])


@pytest.fixture(scope="session")
def testbed() -> Iterator[TestBedFixture]:
    """The running test bed (a :class:`TestBedFixture`), started once per session."""
    if SKIP:
        pytest.skip("GLANCESYNC_TESTBED_SKIP=1")
    _bypass_proxies()
    base = os.environ.get("GLANCESYNC_TESTBED_BASE")
    bed = tb.TestBed.attach(base) if base else tb.TestBed()
    try:
        if not base:
            bed.start()  # a failure here is an error of every integration test, not a skip
        yield TestBedFixture(bed)
    finally:
        bed.stop()


@pytest.fixture(autouse=True)
def clean_glance(testbed: TestBedFixture) -> None:
    """Every integration test starts with no image in any region of either cloud."""
    testbed.delete_all_images()
