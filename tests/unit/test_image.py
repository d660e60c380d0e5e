"""The Image value object: its backup-CSV row form and content identity."""

from __future__ import annotations

import csv
import io

import pytest

from glancesync.image import Image

SHA1 = "ddfe163345d338193ac2bdc183f8e9dcff904b43"


def parse_line(line: str) -> list[str]:
    return next(csv.reader(io.StringIO(line)))


def full_image() -> Image:
    return Image(
        id="0b7a4e1c-1111-2222-3333-444455556666",
        name="base_ubuntu_14.04",
        region="other:Madrid",
        owner="tenant1id",
        visibility="shared",
        checksum="d41d8cd98f00b204e9800998ecf8427e",
        size=1073741824,
        status="active",
        properties={"type": "baseimages", "nid": "865", "note": 'has, comma and "quote"'},
        os_hash_algo="sha512",
        os_hash_value="cf83e1357eefb8bd",
        disk_format="qcow2",
        container_format="bare",
        min_ram=512,
        min_disk=10,
        protected=True,
    )


# -- round trip ---------------------------------------------------------------------------
def test_csv_round_trip_keeps_every_field() -> None:
    image = full_image()
    assert Image.from_csv_row(image.to_csv_row()) == image


def test_csv_round_trip_through_a_real_csv_file() -> None:
    image = full_image()
    out = io.StringIO(newline="")
    csv.writer(out, dialect="excel").writerow(image.to_csv_row())
    assert out.getvalue().endswith("\r\n")
    row = next(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert Image.from_csv_row(row) == image


def test_csv_round_trip_of_a_minimal_image() -> None:
    image = Image(id="101", name=None, region="Burgos", visibility="private")
    assert Image.from_csv_row(image.to_csv_row()) == image


def test_first_nine_fields_are_the_old_format() -> None:
    image = Image(
        id="101",
        name="image01",
        region="Burgos",
        owner="tenant1id",
        checksum=SHA1,
        size=1073741824,
        properties={"type": "ngimages", "nid": "1"},
    )
    assert image.to_csv_row()[:9] == [
        "Burgos",
        "image01",
        "101",
        "active",
        "1073741824",
        SHA1,
        "tenant1id",
        "True",
        "{'nid': '1', 'type': 'ngimages'}",
    ]


def test_region_argument_overrides_the_region_field() -> None:
    image = Image.from_csv_row(full_image().to_csv_row(), region="Valladolid")
    assert image.region == "Valladolid"


# -- rows written by the 2015 tool --------------------------------------------------------
def test_old_nine_field_row_parses() -> None:
    row = parse_line(
        f"Burgos,image01,101,active,1073741824,{SHA1},tenant1id,True,"
        "\"{'type': 'ngimages', 'nid': 1}\""
    )
    image = Image.from_csv_row(row)
    assert image == Image(
        id="101",
        name="image01",
        region="Burgos",
        owner="tenant1id",
        visibility="public",
        checksum=SHA1,
        size=1073741824,
        status="active",
        properties={"type": "ngimages", "nid": "1"},  # the int becomes a string
    )
    assert image.os_hash_algo is None and image.disk_format is None
    assert (image.min_ram, image.min_disk, image.protected) == (0, 0, False)


def test_old_row_with_python2_unicode_literals_parses() -> None:
    row = parse_line(
        "other:Madrid,image199,199,active,5,abc,,False,\"{u'type': u'fiware:iot', u'nid': u'199'}\""
    )
    image = Image.from_csv_row(row)
    assert image.properties == {"type": "fiware:iot", "nid": "199"}
    assert image.region == "other:Madrid"
    assert image.owner is None  # an empty owner field is None
    assert image.visibility == "private"


def test_property_values_become_strings() -> None:
    row = ["R", "n", "1", "active", "0", "", "", "True", "{'a': 1, 'b': True, 'c': 1.5}"]
    assert Image.from_csv_row(row).properties == {"a": "1", "b": "True", "c": "1.5"}


def test_empty_property_field_is_no_properties() -> None:
    row = ["R", "n", "1", "active", "0", "", "", "True", ""]
    assert Image.from_csv_row(row).properties == {}


# -- visibility (field 8) -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "visibility"),
    [
        ("True", "public"),
        (" True ", "public"),
        ("False", "private"),
        ("", "private"),
        ("shared", "shared"),
        ("community", "community"),
    ],
)
def test_visibility_field(field: str, visibility: str) -> None:
    row = ["R", "n", "1", "active", "0", "", "", field, "{}"]
    assert Image.from_csv_row(row).visibility == visibility


@pytest.mark.parametrize(
    ("visibility", "field"),
    [("public", "True"), ("private", "False"), ("shared", "shared"), ("community", "community")],
)
def test_visibility_written_as_old_bool_or_word(visibility: str, field: str) -> None:
    assert Image(id="1", name="n", visibility=visibility).to_csv_row()[7] == field


def test_unknown_visibility_is_rejected() -> None:
    row = ["R", "n", "1", "active", "0", "", "", "everyone", "{}"]
    with pytest.raises(ValueError, match="visibility"):
        Image.from_csv_row(row)


# -- malformed rows -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "field",
    [
        "__import__('os').system('x')",
        "{'a': __import__('os').system('x')}",
        "dict(a=1)",
        "{[1]: 2}",  # literal_eval raises TypeError here, not ValueError
        "{" * 1000,
        "['not', 'a', 'dict']",
        "{'a': 1",
    ],
)
def test_property_field_that_is_not_a_literal_dict_is_rejected(field: str) -> None:
    row = ["R", "n", "1", "active", "0", "", "", "True", field]
    with pytest.raises(ValueError, match="properties field"):
        Image.from_csv_row(row)


def test_row_with_too_few_fields_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 9 fields, found 3"):
        Image.from_csv_row(["R", "n", "1"])


def test_row_without_id_is_rejected() -> None:
    with pytest.raises(ValueError, match="id field is empty"):
        Image.from_csv_row(["R", "n", "", "active", "0", "", "", "True", "{}"])


@pytest.mark.parametrize("index", [4, 13, 14])
def test_non_integer_size_or_min_values_are_rejected(index: int) -> None:
    row = full_image().to_csv_row()
    row[index] = "big"
    with pytest.raises(ValueError, match="not an integer"):
        Image.from_csv_row(row)


# -- content identity ---------------------------------------------------------------------
def test_same_content_uses_multihash_when_both_have_the_same_algo() -> None:
    a = Image(id="a", name="x", checksum="md5a", os_hash_algo="sha512", os_hash_value="h1")
    same_hash = Image(id="b", name="x", checksum="md5b", os_hash_algo="sha512", os_hash_value="h1")
    other_hash = Image(id="c", name="x", checksum="md5a", os_hash_algo="sha512", os_hash_value="h2")
    # The multihash decides, even against the md5.
    assert a.same_content(same_hash)
    assert not a.same_content(other_hash)


def test_same_content_falls_back_to_md5_when_algos_differ() -> None:
    a = Image(id="a", name="x", checksum="md5a", os_hash_algo="sha512", os_hash_value="h1")
    b = Image(id="b", name="x", checksum="md5a", os_hash_algo="sha256", os_hash_value="h9")
    c = Image(id="c", name="x", checksum="md5c", os_hash_algo="sha256", os_hash_value="h1")
    assert a.same_content(b)
    assert not a.same_content(c)


def test_same_content_falls_back_to_md5_when_one_side_has_no_hash() -> None:
    a = Image(id="a", name="x", checksum="md5a", os_hash_algo="sha512", os_hash_value="h1")
    old = Image(id="b", name="x", checksum="md5a")
    assert a.same_content(old) and old.same_content(a)
    assert not a.same_content(Image(id="c", name="x", checksum="md5c"))


def test_no_checksum_on_either_side_is_never_the_same_content() -> None:
    assert not Image(id="a", name="x").same_content(Image(id="b", name="x"))


def test_content_ids_are_md5_and_multihash() -> None:
    image = Image(id="a", name="x", checksum="md5a", os_hash_algo="sha512", os_hash_value="h1")
    assert image.content_ids() == {"md5a", "h1"}
    assert Image(id="b", name="x", checksum="md5b").content_ids() == {"md5b"}
    assert Image(id="c", name="x").content_ids() == set()


# -- compatibility and copies -------------------------------------------------------------
@pytest.mark.parametrize(
    ("visibility", "public"),
    [("public", True), ("private", False), ("shared", False), ("community", False)],
)
def test_is_public_is_visibility_public(visibility: str, public: bool) -> None:
    assert Image(id="1", name="n", visibility=visibility).is_public is public


def test_user_properties_is_the_properties_dict() -> None:
    image = Image(id="1", name="n", properties={"type": "ngimages"})
    assert image.user_properties == {"type": "ngimages"}


def test_copy_is_independent_of_the_original() -> None:
    original = Image(id="1", name="n", properties={"type": "ngimages"})
    dup = original.copy()
    dup.properties["type"] = "changed"
    dup.properties["new"] = "x"
    assert original.properties == {"type": "ngimages"}
    assert dup == Image(id="1", name="n", properties={"type": "changed", "new": "x"})


def test_copy_with_changes() -> None:
    original = Image(id="1", name="n", visibility="public")
    changed = original.copy(name="n.old", visibility="private")
    assert (changed.name, changed.visibility, changed.id) == ("n.old", "private", "1")
    assert (original.name, original.visibility) == ("n", "public")


def test_constructor_copies_the_properties_it_is_given() -> None:
    props = {"type": "ngimages"}
    image = Image(id="1", name="n", properties=props)
    props["type"] = "changed"
    assert image.properties == {"type": "ngimages"}


# Properties fields as repr() writes them (read without literal_eval) and others (read
# with it): either way the result is exactly literal_eval's, errors included.
PROPERTY_FIELDS = [
    "{}",
    "{'type': 'baseimages', 'nid': '865'}",
    """{'note': 'has, comma and "quote"', "it's": "a: 'b', c"}""",
    "{'a': '1', 'a': '2'}",  # a repeated key: the last value, the first place
    "{'k': ''}",
    "{'tab': 'a\tb', 'uni': 'ñ – 中'}",
    "{'esc': 'a\\\\b', 'nl': 'x\\ny'}",  # escapes: literal_eval reads them
    "{u'type': u'x'}",
    "{'a': 1, 'b': None}",
    "{'a':'b'}",
    "{ 'a': 'b' }",
    "{'a': 'b',}",
    "{'a': 'b'} ",
    "{'a': 'b'}{'c': 'd'}",
    "{'a': 'b\nc'}",  # a raw newline inside quotes: not a literal
    "{'a': 'b\x00'}",
    "{'a' 'b': 'c'}",
    "{'a': 'b', 'c'}",
    "['a', 'b']",
    "{'a': 'b",
]


@pytest.mark.parametrize("field", PROPERTY_FIELDS)
def test_property_field_is_read_as_literal_eval_reads_it(field: str) -> None:
    import ast

    row = ["R", "n", "1", "active", "0", "", "", "True", field]
    try:
        expected = ast.literal_eval(field.strip())
    except (ValueError, SyntaxError, TypeError) as exc:
        with pytest.raises(ValueError, match="properties field is not"):
            Image.from_csv_row(row)
        assert exc is not None
        return
    if not isinstance(expected, dict):
        with pytest.raises(ValueError, match="properties field is not a dict"):
            Image.from_csv_row(row)
        return
    properties = Image.from_csv_row(row).properties
    assert properties == {str(k): str(v) for k, v in expected.items()}
    assert list(properties) == [str(k) for k in expected]
