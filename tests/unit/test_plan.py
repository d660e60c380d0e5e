"""The pure plan: statuses per image (selection, statuses and actions)."""

from __future__ import annotations

from glancesync.config import TargetConfig
from glancesync.image import Image
from glancesync.plan import old_name, plan_region
from glancesync.selection import is_synchronisable, master_images

TENANT = "tenant1id"


def img(name, id=None, checksum=None, size=100, region="Master", **kw) -> Image:
    return Image(
        id=id or f"id-{name}-{region}",
        name=name,
        region=region,
        owner=kw.pop("owner", TENANT),
        checksum=checksum or f"md5-{name}",
        size=size,
        **kw,
    )


def dest(master: Image, region="Burgos", **kw) -> Image:
    """A faithful copy of ``master`` in a destination region."""
    fields = dict(
        checksum=master.checksum,
        size=master.size,
        visibility=master.visibility,
        properties=dict(master.properties),
    )
    image_id = kw.pop("id", None) or f"d-{master.name}"
    fields.update(kw)
    return img(master.name, id=image_id, region=region, **fields)


def statuses(masters, dests, target=None, **target_kw):
    target = target or TargetConfig("master", **target_kw)
    plan = plan_region("Burgos", {m.name: m for m in masters}, dests, target, TENANT)
    return {p.name: p.status for p in plan.images}, plan


# -- master pre-filter and selection -------------------------------------------------


def test_master_prefilter_drops_inactive_unnamed_foreign_and_duplicates():
    images = [
        img("good"),
        img("queued", status="queued"),
        img("", id="noname"),
        img("foreign", owner="othertenant"),
        img("padded", owner="0000" + TENANT),
        img("dup", id="a"),
        img("dup", id="b"),
    ]
    master, warnings = master_images(images, TENANT)
    assert sorted(master) == ["good", "padded"]
    assert warnings == ["Duplicated images with name dup will be ignored"]


def test_selection_rules_in_order():
    public = img("public", properties={"p3": "x"})
    private = img("private", visibility="private")
    obsolete = img("x_obsolete")
    t = TargetConfig("master", forcesyncs=frozenset({private.id, obsolete.id}))
    assert is_synchronisable(public, t)
    assert is_synchronisable(private, t)  # forcesyncs beats private
    assert not is_synchronisable(obsolete, t)  # _obsolete beats forcesyncs
    with_set = TargetConfig("master", metadata_set=frozenset({"p3", "p2"}))
    assert is_synchronisable(public, with_set)
    assert not is_synchronisable(img("bare"), with_set)
    assert not is_synchronisable(
        img("priv", visibility="private", properties={"p3": "1"}), with_set
    )


# -- statuses ----------------------------------------------------------------------


def test_missing_image_is_pending_upload_and_synced_one_is_ok():
    a, b = img("a"), img("b")
    got, _ = statuses([a, b], [dest(a)])
    assert got == {"a": "ok", "b": "pending_upload"}


def test_private_master_images_are_not_selected_by_default():
    got, _ = statuses([img("priv", visibility="private")], [])
    assert got == {}


def test_metadata_difference_without_metadata_set_syncs_every_property():
    m = img("a", properties={"type": "base", "nid": "1"})
    got, plan = statuses([m], [dest(m, properties={"type": "old", "local": "x"})])
    assert got == {"a": "pending_metadata"}
    assert plan.images[0].changes == {"type": "base", "nid": "1", "local": None}


def test_metadata_set_limits_the_compared_properties():
    m = img("a", properties={"nid": "1", "type": "base", "other": "m"})
    d = dest(m, properties={"nid": "1", "type": "base", "other": "local"})
    got, plan = statuses([m], [d], metadata_set=frozenset({"nid", "type"}))
    assert got == {"a": "ok"}
    d2 = dest(m, properties={"nid": "2", "type": "base"})
    got, plan = statuses([m], [d2], metadata_set=frozenset({"nid", "type", "gone"}))
    assert got == {"a": "pending_metadata"}
    assert plan.images[0].changes == {"nid": "1"}


def test_visibility_mismatch_in_either_direction_is_pending_metadata():
    pub = img("pub")
    priv = img("priv", visibility="private")
    t = TargetConfig("master", forcesyncs=frozenset({priv.id}))
    got, plan = statuses(
        [pub, priv], [dest(pub, visibility="private"), dest(priv, visibility="public")], t
    )
    assert got == {"pub": "pending_metadata", "priv": "pending_metadata"}
    assert [p.changes for p in plan.images] == [{"visibility": "private"}, {"visibility": "public"}]


def test_checksum_rules_dontupdate_rename_replace_and_any():
    masters = [img(n) for n in ("c1", "c2", "c3", "c4")]
    dests = [dest(m, checksum=f"old-{m.name}") for m in masters]
    got, _ = statuses(masters, dests)
    assert set(got.values()) == {"error_checksum"}
    got, _ = statuses(
        masters,
        dests,
        dontupdate=frozenset({"old-c1"}),
        replace=frozenset({"old-c2", "any"}),
        rename=frozenset({"any"}),
    )
    assert got == {
        "c1": "ok_stalled_checksum",
        "c2": "pending_replace",
        "c3": "pending_rename",
        "c4": "pending_rename",
    }


def test_rename_beats_replace_for_the_same_checksum_and_specific_beats_any():
    m = img("a")
    d = dest(m, checksum="old")
    assert statuses([m], [d], replace=frozenset({"old"}), rename=frozenset({"old"}))[0] == {
        "a": "pending_rename"
    }
    assert statuses([m], [d], replace=frozenset({"any"}), rename=frozenset({"any"}))[0] == {
        "a": "pending_rename"
    }
    assert statuses([m], [d], replace=frozenset({"any"}), rename=frozenset({"old"}))[0] == {
        "a": "pending_rename"
    }
    assert statuses([m], [d], replace=frozenset({"old"}), rename=frozenset({"any"}))[0] == {
        "a": "pending_replace"
    }
    assert statuses([m], [d], dontupdate=frozenset({"any"}))[0] == {"a": "ok_stalled_checksum"}


def test_multihash_identifies_content_and_checksum_lists_accept_it():
    m = img("a", os_hash_algo="sha512", os_hash_value="h-new")
    same = dest(m, checksum="md5-other", os_hash_algo="sha512", os_hash_value="h-new")
    assert statuses([m], [same])[0] == {"a": "ok"}
    changed = dest(m, checksum="md5-old", os_hash_algo="sha512", os_hash_value="h-old")
    assert statuses([m], [changed], replace=frozenset({"h-old"}))[0] == {"a": "pending_replace"}


def test_destination_matching_warnings():
    m = img("a")
    foreign = dest(m, id="foreign", owner="other")
    queued = dest(m, id="queued", status="queued")
    got, plan = statuses([m], [foreign, queued])
    assert got == {"a": "pending_upload"}
    assert plan.warnings == [
        "Burgos: image a (UUID foreign) is owned by other tenant: other",
        "Burgos: state of image a with UUID queued  is not active: queued",
    ]
    got, _ = statuses([m], [foreign], only_tenant_images=False)
    assert got == {"a": "ok"}


def test_duplicates_prefer_the_copy_with_the_master_content():
    m = img("a")
    other1, match, other2 = (
        dest(m, id="o1", checksum="x"),
        dest(m, id="m"),
        dest(m, id="o2", checksum="y"),
    )
    got, plan = statuses([m], [other1, match, other2])
    # the right copy is kept, but two others of other content stay beside it and no
    # rule removes them: the name is ambiguous, the operator must decide
    assert got == {"a": "error_checksum"}
    assert plan.images[0].dest.id == "m"
    assert "o1, o2" in plan.images[0].problem
    assert len(plan.warnings) == 2


def test_a_duplicate_that_a_rule_covers_keeps_the_image_ok_and_is_removed():
    m = img("a")
    old, match = dest(m, id="old", checksum="x"), dest(m, id="m")
    got, plan = statuses([m], [old, match], replace=frozenset({"x"}))
    assert got == {"a": "ok"}
    assert [type(op).__name__ for op in plan.operations] == ["RemoveDuplicate"]
    got, plan = statuses([m], [old, match], dontupdate=frozenset({"x"}))
    assert got == {"a": "ok"}  # the operator said to keep it
    assert plan.operations == []


def test_a_protected_duplicate_under_replace_needs_the_operator():
    m = img("a")
    old, match = dest(m, id="old", checksum="x", protected=True), dest(m, id="m")
    got, plan = statuses([m], [old, match], replace=frozenset({"x"}))
    assert got == {"a": "error_checksum"}
    assert "unprotect" in plan.images[0].problem


# -- AMI ---------------------------------------------------------------------------


def ami_set(kernel_size=10, ramdisk_size=10, ami_size=1000):
    k = img("kernel", size=kernel_size)
    r = img("ramdisk", size=ramdisk_size)
    a = img("ami", size=ami_size, properties={"kernel_id": k.id, "ramdisk_id": r.id})
    return k, r, a


def test_ami_references_are_destination_ids():
    k, r, a = ami_set()
    dk, dr = dest(k), dest(r)
    good = dest(a, properties={"kernel_id": dk.id, "ramdisk_id": dr.id})
    assert statuses([k, r, a], [dk, dr, good])[0] == {"kernel": "ok", "ramdisk": "ok", "ami": "ok"}
    wrong = dest(a, properties={"kernel_id": dk.id, "ramdisk_id": "stale"})
    got, plan = statuses([k, r, a], [dk, dr, wrong])
    assert got["ami"] == "pending_metadata"
    assert plan.images[-1].changes == {"ramdisk_id": dr.id}


def test_ami_smaller_than_its_kernel_is_pending_ami_not_error():
    k, r, a = ami_set(kernel_size=5000, ramdisk_size=10, ami_size=100)
    da = dest(a, properties={"kernel_id": "old-kernel", "ramdisk_id": "old-ramdisk"})
    got, plan = statuses([k, r, a], [da])
    assert got == {"ami": "pending_ami", "ramdisk": "pending_upload", "kernel": "pending_upload"}
    # Kernels and ramdisks go first whatever their size.
    assert [p.name for p in plan.upload_order()] == ["ramdisk", "kernel"]


def test_missing_ami_uploads_after_its_kernel_even_when_smaller():
    k, r, a = ami_set(kernel_size=5000, ramdisk_size=3000, ami_size=100)
    got, plan = statuses([k, r, a], [])
    assert set(got.values()) == {"pending_upload"}
    assert [p.name for p in plan.upload_order()] == ["ramdisk", "kernel", "ami"]


def test_ami_referencing_a_non_selected_or_unknown_image_is_error_ami():
    k = img("kernel", visibility="private")  # not selected
    a = img("ami", properties={"kernel_id": k.id, "nid": "1"})
    b = img("ami2", properties={"ramdisk_id": "no-such-uuid"})
    got, plan = statuses([k, a, b], [dest(a, properties={"kernel_id": "x"})])
    assert got == {"ami": "error_ami", "ami2": "error_ami"}
    # error_ami still gets the rest of its metadata fixed (old bug: nothing at all).
    assert plan.images[0].changes == {"nid": "1"}
    assert (
        plan.images[0].problem
        == "kernel_id points to kernel, which is not selected for this target"
    )
    assert plan.images[1].problem == (
        "ramdisk_id no-such-uuid is not an active image of the master tenant with a unique "
        "name in the master region"
    )


def test_kernel_replaced_makes_its_ami_pending_ami():
    k, r, a = ami_set()
    dk, dr = dest(k, checksum="old"), dest(r)
    da = dest(a, properties={"kernel_id": dk.id, "ramdisk_id": dr.id})
    got, _ = statuses([k, r, a], [dk, dr, da], replace=frozenset({"old"}))
    assert got == {"kernel": "pending_replace", "ramdisk": "ok", "ami": "pending_ami"}


def test_ami_property_only_in_destination_is_removed():
    m = img("a")
    got, plan = statuses([m], [dest(m, properties={"ramdisk_id": "x"})])
    assert got == {"a": "pending_metadata"}
    assert plan.images[0].changes == {"ramdisk_id": None}


# -- obsolete ------------------------------------------------------------------------


def test_obsolete_master_renames_the_destination_copy():
    old = img("base_obsolete", properties={"sdc_aware": "true", "param": "1"}, visibility="private")
    d = dest(old, id="d1", visibility="public", properties={"sdc_aware": "false"})
    d = d.copy(name="base")
    target = TargetConfig("master", obsolete_syncprops=frozenset({"sdc_aware"}))
    got, plan = statuses([old], [d], target)
    assert got == {}
    [update] = plan.obsolete
    assert update.changes == {"name": "base_obsolete", "visibility": "private", "sdc_aware": "true"}


def test_obsolete_skips_other_content_other_tenant_and_synchronisable_base():
    old = img("base_obsolete")
    different = dest(old, checksum="other").copy(name="base")
    foreign = dest(old, id="f", owner="someone").copy(name="base")
    got, plan = statuses([old], [different, foreign])
    assert plan.obsolete == []
    base = img("base", checksum="new")
    got, plan = statuses([old, base], [dest(old).copy(name="base", checksum=old.checksum)])
    assert plan.obsolete == []
    assert plan.warnings[-1] == (
        "Ignore obsolete master image base_obsolete because base exists and it is synchronisable."
    )


def test_obsolete_disabled():
    old = img("base_obsolete")
    _, plan = statuses([old], [dest(old).copy(name="base")], support_obsolete_images=False)
    assert plan.obsolete == []


def test_show_status_order_is_size_then_name():
    masters = [img("b", size=5), img("a", size=5), img("c", size=1)]
    _, plan = statuses(masters, [])
    assert [p.name for p in plan.images] == ["c", "a", "b"]


def test_old_name_picks_a_free_suffix():
    assert old_name("x", {"x"}) == "x.old"
    assert old_name("x", {"x", "x.old"}) == "x.old.1"
    assert old_name("x", {"x", "x.old", "x.old.1"}) == "x.old.2"


def test_an_image_referencing_an_error_ami_image_is_error_ami_too():
    hidden = img("kernel", visibility="private")  # not selected
    middle = img("middle", properties={"kernel_id": hidden.id})  # error_ami: not uploadable
    top = img("top", properties={"ramdisk_id": middle.id})
    got, plan = statuses([hidden, middle, top], [])
    assert got == {"middle": "error_ami", "top": "error_ami"}
    assert plan.upload_order() == plan.needs_operator  # nothing is uploaded


def test_shared_master_facts_give_every_region_the_same_plan_and_condition_warning(
    caplog,
) -> None:
    """Selection computed once for a target and shared by its regions: the statuses are
    those of planning each region alone, and each region still warns about an image the
    metadata_condition fails on."""
    from glancesync.condition import Condition
    from glancesync.plan import master_facts

    target = TargetConfig(
        "master", metadata_condition=Condition("image.user_properties['type'] == 'x'")
    )
    good = img("good", properties={"type": "x"})
    broken = img("broken")  # no 'type': the condition raises KeyError
    master = {m.name: m for m in (good, broken)}
    facts = master_facts(master, target)
    assert caplog.records == []  # nothing logged until a region is planned
    plans = [
        plan_region(region, master, [dest(good, region=region)], target, TENANT, facts=facts)
        for region in ("Burgos", "Madrid")
    ]
    alone = plan_region("Burgos", master, [dest(good)], target, TENANT)
    assert [[(p.name, p.status) for p in plan.images] for plan in plans] == [
        [(p.name, p.status) for p in alone.images]
    ] * 2 == [[("good", "ok")]] * 2
    failures = [r.getMessage() for r in caplog.records if "not selected" in r.getMessage()]
    assert len(failures) == 3 and all("broken" in f and "KeyError" in f for f in failures)
