"""The test bed works the way glancesync's users see an OpenStack cloud."""

from __future__ import annotations

import hashlib
import os

import pytest
from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3


def _image_regions(session: ksa_session.Session) -> dict[str, str]:
    """region -> public image endpoint URL, from the session's service catalog."""
    catalog = session.auth.get_access(session).service_catalog
    endpoints = catalog.get_endpoints(service_type="image", interface="public")["image"]
    return {ep["region_id"]: ep["url"].rstrip("/") for ep in endpoints}


def _password_session(env: dict[str, str], **override: str) -> ksa_session.Session:
    env = {**env, **override}
    return ksa_session.Session(auth=v3.Password(
        auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
        project_name=env["OS_PROJECT_NAME"], user_domain_name=env["OS_USER_DOMAIN_NAME"],
        project_domain_name=env["OS_PROJECT_DOMAIN_NAME"]))


def test_env_describes_both_clouds(testbed):
    assert testbed.env["OS_IDENTITY_API_VERSION"] == "3"
    assert testbed.env["OS_REGION_NAME"] == "Master"
    assert testbed.env["OS_INTERFACE"] == "public"
    assert (testbed.env["OS_USERNAME"], testbed.env["OS_PROJECT_NAME"]) == ("tenant", "tenant1")
    assert (testbed.target_env["OS_USERNAME"], testbed.target_env["OS_PROJECT_NAME"]) == (
        "target", "target1")
    assert testbed.target_env["OS_REGION_NAME"] == "RegionC"
    assert testbed.env["OS_AUTH_URL"] != testbed.target_env["OS_AUTH_URL"]
    for env in (testbed.env, testbed.target_env):
        assert env["OS_AUTH_URL"].startswith("http://127.0.0.1:")
    assert testbed.regions == ["Master", "RegionA", "RegionB"]
    assert testbed.target_regions == ["RegionC"]
    assert testbed.base.is_dir()


@pytest.mark.parametrize("cloud", ["master", "target"])
def test_user_authenticates_to_keystone(testbed, cloud):
    session = testbed.keystone_session(cloud)
    assert session.get_token()
    access = session.auth.get_access(session)
    assert access.project_name == testbed.cloud_env(cloud)["OS_PROJECT_NAME"]
    assert "member" in access.role_names


def test_wrong_password_and_other_cloud_are_rejected(testbed):
    with pytest.raises(ksa_exc.Unauthorized):
        _password_session(testbed.env, OS_PASSWORD="wrong").get_token()
    # the target user exists only in Keystone 2
    with pytest.raises(ksa_exc.Unauthorized):
        _password_session(testbed.target_env, OS_AUTH_URL=testbed.env["OS_AUTH_URL"]).get_token()


def test_catalog_lists_exactly_the_image_regions(testbed):
    regions = _image_regions(testbed.keystone_session("master"))
    assert sorted(regions) == ["Master", "RegionA", "RegionB"]
    for region, url in regions.items():
        assert url == testbed.glance_url(region)
    assert len(set(regions.values())) == 3  # one Glance per region


def test_target_user_sees_region_c_only(testbed):
    session = testbed.keystone_session("target")
    assert _image_regions(session) == {"RegionC": testbed.glance_url("RegionC")}
    image = testbed.create_image("RegionC", "target-image", b"target bytes", cloud="target")
    assert testbed.download("RegionC", image["id"], cloud="target") == b"target bytes"
    assert [i["id"] for i in testbed.list_images("RegionC", cloud="target")] == [image["id"]]
    # a token of Keystone 1 means nothing to the target cloud's Glance
    r = ksa_session.Session().get(testbed.glance_url("RegionC") + "/v2/images", raise_exc=False,
                                  headers={"X-Auth-Token": testbed.keystone_session().get_token()})
    assert r.status_code == 401


def test_upload_download_round_trip(testbed):
    data = os.urandom(3 * 1024 * 1024 + 123)  # several 1 MiB chunks and a partial one
    image = testbed.create_image("RegionA", "roundtrip", data, nid="123", type="baseimage")
    assert image["status"] == "active"
    assert image["size"] == len(data)
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["os_hash_algo"] == "sha512"
    assert image["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert (image["nid"], image["type"]) == ("123", "baseimage")
    assert testbed.download("RegionA", image["id"]) == data
    # other regions are other Glance servers
    assert testbed.list_images("Master") == []
    with pytest.raises(glance_exc.HTTPNotFound):
        testbed.glance("RegionB").images.get(image["id"])


def test_member_can_publicize(testbed):
    image = testbed.create_image("Master", "to-publish", b"public bytes")
    assert image["visibility"] != "public"
    testbed.glance("Master").images.update(image["id"], visibility="public")
    assert testbed.glance("Master").images.get(image["id"])["visibility"] == "public"
    # another project of the same cloud sees it now
    admin_listing = testbed.glance("Master", "admin").images.list(filters={"visibility": "public"})
    assert image["id"] in [i["id"] for i in admin_listing]


def test_list_images_includes_hidden(testbed):
    visible = testbed.create_image("RegionB", "visible", b"v")
    hidden = testbed.create_image("RegionB", "hidden", b"h", os_hidden=True)
    listed = {i["id"]: i for i in testbed.list_images("RegionB")}
    assert set(listed) == {visible["id"], hidden["id"]}
    assert listed[hidden["id"]]["os_hidden"] is True


def test_delete_all_images_cleans_every_kind(testbed):
    testbed.create_image("Master", "protected", b"p", protected=True, os_hidden=True)
    testbed.create_image("RegionA", "queued", data=None)
    community = testbed.create_image("RegionB", "community", b"c")
    testbed.glance("RegionB").images.update(community["id"], visibility="community")
    testbed.create_image("RegionC", "target", b"t", cloud="target")
    testbed.delete_all_images()
    for region in testbed.regions:
        assert testbed.list_images(region, "admin") == []
        assert testbed.list_images(region) == []
    assert testbed.list_images("RegionC", "target-admin") == []
