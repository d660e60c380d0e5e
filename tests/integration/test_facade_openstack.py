"""OpenStackFacade against the real Keystone + Glance test bed: what a glancesync user sees.

Nothing is mocked: every call goes through keystoneauth1 and glanceclient to the servers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from keystoneclient.v3 import client as keystone_client

from glancesync import transfer as transfer_module
from glancesync.config import Credentials
from glancesync.exceptions import ConfigError, FacadeError, Interrupted, SourceMismatch
from glancesync.facade import openstack as openstack_module
from glancesync.facade.openstack import OpenStackFacade
from glancesync.image import Image
from glancesync.transfer import ImageSource, source_for

MiB = 1024 * 1024


def credentials(env: dict[str, str], **changes: object) -> Credentials:
    creds = Credentials(
        auth_url=env["OS_AUTH_URL"],
        username=env["OS_USERNAME"],
        password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"],
        user_domain_name=env["OS_USER_DOMAIN_NAME"],
        project_domain_name=env["OS_PROJECT_DOMAIN_NAME"],
    )
    return dataclasses.replace(creds, **changes)


def payload(size: int, seed: bytes = b"glancesync") -> bytes:
    """Deterministic incompressible-looking bytes (raw disk format: Glance sniffs formats)."""
    count = size // 64 + 1  # sha512 digests are 64 bytes
    blocks = (hashlib.sha512(seed + n.to_bytes(8, "big")).digest() for n in range(count))
    return b"".join(blocks)[:size]


@pytest.fixture
def master(testbed) -> OpenStackFacade:
    return OpenStackFacade("master", credentials(testbed.env), timeout=30)


@pytest.fixture
def target(testbed) -> OpenStackFacade:
    return OpenStackFacade("other", credentials(testbed.target_env), timeout=30)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (the kernel does the accepting)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def extra_region(testbed) -> Iterator[Callable[[str, str], None]]:
    """Adds an image endpoint (region -> URL) to Keystone 1's catalog for one test."""
    ks = keystone_client.Client(session=testbed.keystone_session("admin"))
    service = ks.services.list(type="image")[0]
    added: list[tuple[object, object]] = []

    def add(region: str, url: str) -> None:
        region_ref = ks.regions.create(id=region)
        endpoint = ks.endpoints.create(
            service=service, url=url, interface="public", region=region
        )
        added.append((endpoint, region_ref))

    yield add
    for endpoint, region_ref in added:
        ks.endpoints.delete(endpoint)
        ks.regions.delete(region_ref)


def by_name(images: list[Image]) -> dict[str, Image]:
    return {image.name: image for image in images}


def master_image(master: OpenStackFacade, name: str) -> Image:
    return by_name(master.list_images("Master"))[name]


# -- regions and tenant ---------------------------------------------------------------------
def test_regions_are_the_image_endpoints_of_each_targets_catalog(master, target):
    assert master.regions() == ["Master", "RegionA", "RegionB"]
    assert target.regions() == ["RegionC"]


def test_tenant_id_is_the_project_images_are_owned_by(testbed, master, target):
    created = testbed.create_image("RegionA", "owned", b"x" * 10)
    assert master.tenant_id() == created["owner"]
    assert target.tenant_id() == testbed.keystone_session("target").get_project_id()
    assert target.tenant_id() != master.tenant_id()


# -- listing --------------------------------------------------------------------------------
def test_listing_maps_every_field_of_public_private_hidden_and_queued_images(testbed, master):
    data = payload(3 * MiB + 5)
    testbed.create_image(
        "RegionA", "base", data, visibility="public", min_ram=512, min_disk=2,
        nid="123", type="baseimage",
    )
    testbed.create_image("RegionA", "mine", b"private bytes", visibility="private")
    testbed.create_image("RegionA", "hidden", b"hidden bytes", os_hidden=True, sdc_aware="true")
    testbed.create_image("RegionA", "queued", None, protected=True)

    images = by_name(master.list_images("RegionA"))

    assert sorted(images) == ["base", "hidden", "mine", "queued"]
    base = images["base"]
    assert base.region == "RegionA"
    assert base.visibility == "public"
    assert base.properties == {"nid": "123", "type": "baseimage"}
    assert base.checksum == hashlib.md5(data).hexdigest()
    assert (base.os_hash_algo, base.os_hash_value) == ("sha512", hashlib.sha512(data).hexdigest())
    assert (base.size, base.status, base.owner) == (len(data), "active", master.tenant_id())
    assert (base.disk_format, base.container_format) == ("raw", "bare")
    assert (base.min_ram, base.min_disk, base.protected) == (512, 2, False)
    assert images["mine"].visibility == "private"
    assert images["hidden"].properties == {"sdc_aware": "true"}
    queued = images["queued"]
    assert (queued.status, queued.size, queued.checksum, queued.protected) == (
        "queued", 0, None, True)


def test_listing_follows_the_pages(testbed, master, monkeypatch):
    for n in range(5):
        testbed.create_image("RegionB", f"img{n}", None)
    testbed.create_image("RegionB", "hidden", None, os_hidden=True)
    monkeypatch.setattr(openstack_module, "PAGE_SIZE", 2)

    names = sorted(image.name for image in master.list_images("RegionB"))

    assert names == ["hidden", "img0", "img1", "img2", "img3", "img4"]


def test_images_of_another_target_carry_the_target_in_their_region(testbed, target):
    testbed.create_image("RegionC", "there", b"abc", cloud="target")
    [image] = target.list_images("RegionC")
    assert (image.name, image.region) == ("there", "other:RegionC")


# -- upload ---------------------------------------------------------------------------------
def test_upload_streams_the_master_bytes_to_another_cloud(testbed, master, target):
    data = payload(5 * MiB + 123)
    testbed.create_image(
        "Master", "ubuntu", data, visibility="private", min_ram=256, min_disk=1,
        nid="42", type="baseimage",
    )
    source_image = master_image(master, "ubuntu")

    new = target.upload_image(
        "RegionC", source_image, source_for(source_image, None, master, "Master")
    )

    assert new.region == "other:RegionC"
    assert (new.name, new.status, new.visibility) == ("ubuntu", "active", "private")
    assert new.checksum == source_image.checksum
    assert (new.os_hash_algo, new.os_hash_value) == (
        source_image.os_hash_algo, source_image.os_hash_value)
    assert new.properties == {"nid": "42", "type": "baseimage"}
    assert (new.min_ram, new.min_disk, new.size) == (256, 1, len(data))
    assert new.owner == target.tenant_id()
    assert testbed.download("RegionC", new.id, cloud="target") == data


def test_upload_from_images_dir_file_never_protects_the_new_copy(testbed, master, tmp_path):
    data = payload(2 * MiB + 1, seed=b"file")
    testbed.create_image("Master", "kernel", data, protected=True)
    source_image = master_image(master, "kernel")
    (tmp_path / source_image.id).write_bytes(data)
    source = source_for(source_image, str(tmp_path), master, "Master")
    assert source.description.startswith("file ")

    new = master.upload_image("RegionA", source_image.copy(hidden=True), source)

    # Protected only once verified and in place (by the executor): a copy that fails its
    # check must stay deletable.
    assert (new.protected, new.hidden) == (False, True)
    assert new.checksum == source_image.checksum
    assert testbed.download("RegionA", new.id) == data


def test_a_master_image_without_hashes_is_checked_against_the_bytes_sent(testbed, master):
    data = payload(2 * MiB + 5, seed=b"nohash")
    testbed.create_image("Master", "snap", data)
    # As Glance lists an image made from a location or an RBD snapshot: no hashes.
    hashless = master_image(master, "snap").copy(checksum=None, os_hash_algo=None,
                                                 os_hash_value=None)
    source = source_for(hashless, None, master, "Master")

    new = master.upload_image("RegionB", hashless, source)

    assert source.check_copy(new) is None
    assert source.check_copy(new.copy(os_hash_value="0" * 128)) is not None
    assert testbed.download("RegionB", new.id) == data


def test_upload_off_a_terminal_logs_progress_lines(testbed, master, monkeypatch, caplog):
    data = payload(3 * MiB, seed=b"progress")
    testbed.create_image("Master", "logged", data)
    source_image = master_image(master, "logged")
    monkeypatch.setattr(transfer_module, "PROGRESS_LOG_INTERVAL", 0.0)

    with caplog.at_level(logging.INFO, logger="glancesync"):
        master.upload_image("RegionB", source_image,
                            source_for(source_image, None, master, "Master"))

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Transferring")]
    assert lines[-1].startswith("Transferring logged from master region Master: 100% of 3.0 MiB, ")
    assert lines[-1].endswith("/s")  # a rate in the same units: "12.3 MiB/s"


def test_upload_of_bytes_that_are_not_the_masters_is_aborted_before_activation(
    testbed, master, monkeypatch
):
    testbed.create_image("Master", "cirros", payload(3 * MiB, seed=b"cirros"))
    lying = master_image(master, "cirros").copy(checksum="0" * 32, os_hash_value=None)
    left: list[str] = []
    # Keep the aborted image instead of deleting it, to see what Glance made of it.
    monkeypatch.setattr(OpenStackFacade, "_delete_after_failure",
                        lambda self, client, fullname, image_id, name: left.append(image_id))

    with pytest.raises(SourceMismatch) as failure:
        master.upload_image("RegionA", lying, source_for(lying, None, master, "Master"))

    message = str(failure.value)
    assert message.startswith("RegionA: image cirros read from master region Master is not "
                              "the master's content: md5 ")
    assert "\n" not in message
    [kept] = testbed.list_images("RegionA")
    assert kept["id"] == left[0]
    assert kept["status"] != "active"  # Glance never received the end of the body


def test_upload_whose_source_breaks_midway_deletes_the_new_image(testbed, master):
    image = Image(id="0" * 32, name="broken", size=3 * MiB, disk_format="raw",
                  container_format="bare", visibility="private")

    def opener() -> Iterator[bytes]:
        yield b"\0" * MiB
        raise OSError("master store went away")

    with pytest.raises(FacadeError) as failure:
        master.upload_image("RegionB", image, ImageSource(image, "a test", opener))

    assert str(failure.value) == (
        "RegionB: Upload of broken failed. Cause: reading a test failed: master store went away")
    assert testbed.list_images("RegionB") == []


def test_upload_interrupted_by_the_user_deletes_the_new_image(testbed, master):
    image = Image(id="0" * 32, name="big", size=4 * MiB, disk_format="raw",
                  container_format="bare", visibility="private")

    def opener() -> Iterator[bytes]:
        yield b"\0" * MiB
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        master.upload_image("RegionB", image, ImageSource(image, "a test", opener))

    assert testbed.list_images("RegionB") == []


def test_upload_rejected_at_create_leaves_nothing(testbed, master):
    image = Image(id="0" * 32, name="bad", disk_format="not-a-format", container_format="bare")
    source = ImageSource(image, "a test", lambda: iter([b"x"]))

    with pytest.raises(FacadeError, match=r"^RegionA: Upload of bad failed\. Cause: "):
        master.upload_image("RegionA", image, source)

    assert testbed.list_images("RegionA") == []


# -- download -------------------------------------------------------------------------------
def test_download_streams_in_bounded_chunks(testbed, master):
    data = payload(3 * MiB + 7)
    created = testbed.create_image("RegionA", "blob", data)

    chunks = list(master.download("RegionA", created["id"]))

    assert b"".join(chunks) == data
    assert len(chunks) >= 4 and max(map(len, chunks)) <= MiB


# -- metadata update ------------------------------------------------------------------------
def test_update_applies_exactly_the_changes(testbed, master):
    created = testbed.create_image(
        "RegionB", "old", b"abc", visibility="private", gone="1", changed="2", kept="3"
    )
    # Someone else edits "kept" after our listing: an exact diff leaves that edit alone.
    testbed.glance("RegionB").images.update(created["id"], kept="edited elsewhere")

    master.update_image(
        "RegionB", created["id"],
        {"name": "new", "visibility": "community", "gone": None, "changed": "20", "added": "4"},
    )

    [image] = master.list_images("RegionB")
    assert (image.name, image.visibility) == ("new", "community")
    assert image.properties == {"changed": "20", "added": "4", "kept": "edited elsewhere"}
    assert (image.disk_format, image.container_format, image.checksum) == (
        "raw", "bare", created["checksum"])


def test_update_of_a_missing_image_is_a_region_failure(master):
    with pytest.raises(FacadeError) as failure:
        master.update_image("RegionA", "00000000-0000-0000-0000-000000000000", {"a": "b"})
    assert str(failure.value).startswith(
        "RegionA: Update of 00000000-0000-0000-0000-000000000000 failed. Cause: HTTP 404")


# -- delete ---------------------------------------------------------------------------------
def test_delete_removes_the_image(testbed, master):
    created = testbed.create_image("RegionA", "doomed", b"abc")
    master.delete_image("RegionA", created["id"])
    assert testbed.list_images("RegionA") == []


def test_delete_of_an_image_already_gone_is_no_error(testbed, master):
    created = testbed.create_image("RegionA", "doomed", b"abc")
    master.delete_image("RegionA", created["id"])
    master.delete_image("RegionA", created["id"])  # a retried delete meets 404: done
    assert master.get_image("RegionA", created["id"]) is None


def test_update_hides_unhides_and_protects(testbed, master):
    created = testbed.create_image("RegionB", "swap", b"abc", visibility="private")
    master.update_image("RegionB", created["id"], {"os_hidden": True, "glancesync_run": "x"})
    image = master.get_image("RegionB", created["id"])
    assert image is not None and image.hidden and image.properties == {"glancesync_run": "x"}
    master.update_image(
        "RegionB", created["id"],
        {"os_hidden": False, "protected": True, "glancesync_run": None, "name": "final"},
    )
    image = master.get_image("RegionB", created["id"])
    assert image is not None
    assert (image.name, image.hidden, image.protected, image.properties) == (
        "final", False, True, {})


def test_delete_of_a_protected_image_says_it_is_protected(testbed, master):
    created = testbed.create_image("RegionA", "precious", b"abc", protected=True)

    with pytest.raises(FacadeError) as failure:
        master.delete_image("RegionA", created["id"])

    assert str(failure.value).startswith(
        f"RegionA: Deletion of image {created['id']} failed. Cause: the image is protected")
    assert [i["id"] for i in testbed.list_images("RegionA")] == [created["id"]]


# -- failures a cron job must report in one line --------------------------------------------
def test_a_glance_that_does_not_answer_times_out(testbed, extra_region, silent_port):
    extra_region("Silent", f"http://127.0.0.1:{silent_port}")
    facade = OpenStackFacade("master", credentials(testbed.env), timeout=2, retries=1)
    assert "Silent" in facade.regions()

    started = time.monotonic()
    with pytest.raises(FacadeError) as failure:
        facade.list_images("Silent")

    assert str(failure.value) == "Silent: Timeout while retrieving image list (after 2 s)."
    # one retry after a 0.5 s delay: bounded by the timeout, not hanging (generous margin)
    assert time.monotonic() - started < 20


def test_an_unreachable_glance_is_a_one_line_error(testbed, extra_region, closed_port):
    extra_region("Gone", f"http://127.0.0.1:{closed_port}")
    facade = OpenStackFacade("master", credentials(testbed.env), timeout=5)

    with pytest.raises(FacadeError) as failure:
        facade.list_images("Gone")

    message = str(failure.value)
    assert message.startswith("Gone: Error retrieving image list. Cause: Unable to establish "
                              f"connection to http://127.0.0.1:{closed_port}/v2/images")
    assert message.endswith("Connection refused")
    assert "\n" not in message


def test_a_keystone_that_does_not_answer_times_out(testbed, silent_port):
    creds = credentials(testbed.env, auth_url=f"http://127.0.0.1:{silent_port}/v3")
    facade = OpenStackFacade("master", creds, timeout=1)

    with pytest.raises(FacadeError, match=r"^Master: Timeout while retrieving image list "
                                          r"\(after 1 s\)\.$"):
        facade.list_images("Master")
    with pytest.raises(FacadeError, match=r"^master: Error retrieving the region list\. "
                                          r"Cause: .*timed out$"):
        facade.regions()


def test_a_region_missing_from_the_catalog_is_named(target):
    with pytest.raises(FacadeError) as failure:
        target.list_images("Madrid")
    assert str(failure.value).startswith(
        "other:Madrid: Error retrieving image list. Cause: public endpoint for image service "
        "in Madrid region not found")


def test_a_wrong_password_names_keystone_and_user(testbed):
    facade = OpenStackFacade("master", credentials(testbed.env, password="wrong"))

    with pytest.raises(FacadeError) as failure:
        facade.regions()

    message = str(failure.value)
    assert message.startswith(
        f"master: Error retrieving the region list. Cause: Keystone {testbed.env['OS_AUTH_URL']} "
        "rejected the credentials of user 'tenant' (project 'tenant1'): ")
    assert "(HTTP 401)" in message and "\n" not in message


def test_missing_credentials_are_a_configuration_error():
    with pytest.raises(ConfigError) as failure:
        OpenStackFacade("master", Credentials(auth_url="http://127.0.0.1:1/v3", username="u"))
    assert str(failure.value) == (
        "Target master: incomplete Keystone credentials, missing password, project_name")
    with pytest.raises(ConfigError, match=r"^Target other: .*missing auth_url$"):
        OpenStackFacade("other", Credentials(username="u", password="p", project_name="x"))


# -- other ways to authenticate -------------------------------------------------------------
def test_application_credentials_authenticate(testbed):
    session = testbed.keystone_session("master")
    ks = keystone_client.Client(session=session)
    app = ks.application_credentials.create(
        name=f"glancesync-test-{os.getpid()}", user=session.get_user_id()
    )
    try:
        creds = Credentials(
            auth_url=testbed.env["OS_AUTH_URL"],
            application_credential_id=app.id,
            application_credential_secret=app.secret,
        )
        facade = OpenStackFacade("master", creds)
        testbed.create_image("RegionB", "via-app-cred", b"abc")

        assert facade.regions() == ["Master", "RegionA", "RegionB"]
        assert facade.tenant_id() == session.get_project_id()
        assert [i.name for i in facade.list_images("RegionB")] == ["via-app-cred"]
    finally:
        ks.application_credentials.delete(app.id)


def test_a_cloud_from_clouds_yaml_authenticates(testbed, tmp_path: Path, monkeypatch):
    env = testbed.target_env
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n"
        "  bed-target:\n"
        "    auth:\n"
        f"      auth_url: {env['OS_AUTH_URL']}\n"
        f"      username: {env['OS_USERNAME']}\n"
        f"      password: {env['OS_PASSWORD']}\n"
        f"      project_name: {env['OS_PROJECT_NAME']}\n"
        "      user_domain_name: Default\n"
        "      project_domain_name: Default\n"
        "    region_name: RegionC\n"
        "    identity_api_version: 3\n"
    )
    for key in list(os.environ):
        if key.startswith("OS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    testbed.create_image("RegionC", "from-yaml", b"abc", cloud="target")

    facade = OpenStackFacade("other", Credentials(cloud="bed-target"))

    assert facade.regions() == ["RegionC"]
    assert [i.name for i in facade.list_images("RegionC")] == ["from-yaml"]
    with pytest.raises(ConfigError, match=rf"^Target other: no cloud 'nope' in {clouds}$"):
        OpenStackFacade("other", Credentials(cloud="nope"))


def test_an_interruption_while_the_create_answer_is_awaited_leaves_no_record(
    testbed, master
):
    """Glance has made the image record but its answer is held back when the run is
    interrupted (Ctrl-C in a sequential run, a service stopping a task's thread): the
    record is deleted at once, not left for the next run to clean up."""
    try:
        from .faultproxy import Fault, FaultProxy
    except ImportError:
        from faultproxy import Fault, FaultProxy
    data = payload(MiB, seed=b"held")
    testbed.create_image("Master", "held", data)
    source_image = master_image(master, "held")
    with FaultProxy(testbed.glance_url("RegionA")) as proxy:
        old_url = testbed.bed.set_endpoint("RegionA", proxy.url, "internal")
        try:
            proxied = OpenStackFacade(
                "master", credentials(testbed.env, interface="internal"), timeout=30
            )
            held = proxy.add(Fault("POST", "^/v2/images$", "hold", delay=60))

            def interrupt(signum: int, frame: object) -> None:
                raise Interrupted(signum, "SIGALRM")

            previous = signal.signal(signal.SIGALRM, interrupt)
            try:
                signal.setitimer(signal.ITIMER_REAL, 1.0)
                with pytest.raises(Interrupted):
                    proxied.upload_image("RegionA", source_image,
                                         source_for(source_image, None, master, "Master"))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
                held.release()
            assert held.applied == 1  # the create reached Glance
        finally:
            testbed.bed.set_endpoint("RegionA", old_url, "internal")

    assert [i.name for i in master.list_images("RegionA")] == []
