"""The Image value object (Glance v2 fields) and its backup-CSV row form."""

from __future__ import annotations

import ast
import copy
import functools
import re
from dataclasses import dataclass, field, replace
from typing import Any

VISIBILITIES = ("public", "private", "shared", "community")

# Top-level v2 attributes that are not user properties (Glance v2's core and reserved ones).
CORE_ATTRIBUTES = frozenset(
    {
        "id",
        "name",
        "status",
        "visibility",
        "protected",
        "os_hidden",
        "checksum",
        "os_hash_algo",
        "os_hash_value",
        "owner",
        "size",
        "virtual_size",
        "min_ram",
        "min_disk",
        "disk_format",
        "container_format",
        "created_at",
        "updated_at",
        "tags",
        "self",
        "file",
        "schema",
        "locations",
        "direct_url",
        "stores",
        "is_public",
    }
)
RESERVED_PREFIXES = ("os_glance_", "owner_specified.openstack.")

AMI_PROPERTIES = ("kernel_id", "ramdisk_id")

# The properties field as repr() writes a dict of plain strings: {'k': 'v', "it's": 'x'}.
# A quoted text without backslash, newline or NUL means exactly its characters, so such a
# field is read with two regular expressions instead of ast.literal_eval (most of the
# time of reading a big backup); anything else (escapes, u'' or numbers of old backups,
# other spacing) still goes through literal_eval, with its exact meaning and errors.
_PLAIN_STR = r"'[^'\\\n\r\x00]*'" + "|" + r'"[^"\\\n\r\x00]*"'
_PLAIN_PAIR = rf"(?:{_PLAIN_STR}): (?:{_PLAIN_STR})"
_PLAIN_DICT = re.compile(rf"\{{(?:{_PLAIN_PAIR}(?:, {_PLAIN_PAIR})*)?\}}")
_PAIRS = re.compile(rf"({_PLAIN_STR}): ({_PLAIN_STR})")


def is_user_property(key: str) -> bool:
    return key not in CORE_ATTRIBUTES and not key.startswith(RESERVED_PREFIXES)


@dataclass(slots=True)
class Image:
    """One Glance image as the engine sees it, whatever facade listed it."""

    id: str
    name: str | None
    region: str = ""  # fullname of the region it was listed in: "Burgos", "other:Madrid"
    owner: str | None = None
    visibility: str = "public"
    checksum: str | None = None  # md5 hex
    size: int = 0
    status: str = "active"
    properties: dict[str, str] = field(default_factory=dict)  # user properties only
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    disk_format: str | None = None
    container_format: str | None = None
    min_ram: int = 0
    min_disk: int = 0
    protected: bool = False
    hidden: bool = False  # os_hidden: left out of Glance's default listing

    def __post_init__(self) -> None:
        self.properties = _str_properties(self.properties)
        self.size = int(self.size or 0)

    # -- compatibility with old metadata_condition expressions -------------------------
    @property
    def is_public(self) -> bool:
        return self.visibility == "public"

    @property
    def user_properties(self) -> dict[str, str]:
        return self.properties

    # -- content identity (multihash when both sides have it, else md5) ---------------
    def same_content(self, other: Image) -> bool:
        if self.os_hash_value and other.os_hash_value and self.os_hash_algo == other.os_hash_algo:
            return self.os_hash_value == other.os_hash_value
        return self.checksum is not None and self.checksum == other.checksum

    def content_ids(self) -> set[str]:
        """Every value a checksum list (dontupdate/replace/rename) may name this image by."""
        return {v for v in (self.checksum, self.os_hash_value) if v}

    def copy(self, **changes: Any) -> Image:
        return replace(copy.deepcopy(self), **changes)

    # -- backup CSV (the 2015 tool's nine fields; fields 10+ are ours) ----------------
    def to_csv_row(self) -> list[str]:
        return [
            self.region,
            self.name or "",
            self.id,
            self.status,
            str(self.size),
            self.checksum or "",
            self.owner or "",
            _visibility_to_field(self.visibility),
            repr(dict(sorted(self.properties.items()))),
            self.os_hash_algo or "",
            self.os_hash_value or "",
            self.disk_format or "",
            self.container_format or "",
            str(self.min_ram),
            str(self.min_disk),
            str(self.protected),
            str(self.hidden),
        ]

    @classmethod
    def from_csv_row(cls, row: list[str], region: str | None = None) -> Image:
        """Parse a backup row; raises ValueError with the reason on a malformed row."""
        if len(row) < 9:
            raise ValueError(f"expected at least 9 fields, found {len(row)}")
        if not row[2].strip():
            raise ValueError("id field is empty")
        return cls.from_fields(row[0] if region is None else region, row[1], row[2],
                               row_tail(row[3:]))  # fmt: skip

    @classmethod
    def from_fields(cls, region: str, name: str, image_id: str, tail: RowTail) -> Image:
        """The image of a backup row from its first three fields and ``row_tail`` of the
        others (one tail can serve every row with the same fields 4-17)."""
        # Every value was checked by row_tail, so the instance is filled directly:
        # __init__ would only check them again (a big backup makes hundreds of thousands).
        image = _new_image(cls)
        image.id = image_id
        image.name = name or None
        image.region = region
        (image.status, image.size, image.checksum, image.owner, image.visibility, properties,
         image.os_hash_algo, image.os_hash_value, image.disk_format, image.container_format,
         image.min_ram, image.min_disk, image.protected, image.hidden) = tail  # fmt: skip
        image.properties = properties.copy()  # the tail's dict is shared: never changed
        return image


# Fields 4 to 17 of a backup row (status to hidden) as Image values, in field order.
RowTail = tuple[
    str, int, str | None, str | None, str, dict[str, str], str | None, str | None,
    str | None, str | None, int, int, bool, bool,
]  # fmt: skip


def row_tail(fields: list[str]) -> RowTail:
    """Fields 4 to 17 of a backup row (4 to 9 in the 2015 tool's rows) as Image values;
    raises ValueError with the reason when one is malformed."""
    if len(fields) < 14:
        if len(fields) < 6:
            raise ValueError(f"expected at least 9 fields, found {len(fields) + 3}")
        fields = [*fields, *[""] * (14 - len(fields))]  # 9-field rows of the 2015 tool
    plain = _plain_dict(fields[5])
    properties = plain if plain is not None else _str_properties(_literal_dict(fields[5]))
    try:
        size = int(fields[1] or 0)
        min_ram = 0 if fields[10] == "0" else int(fields[10] or 0)  # "0" nearly always
        min_disk = 0 if fields[11] == "0" else int(fields[11] or 0)
    except ValueError as exc:
        raise ValueError(f"size, min_ram or min_disk is not an integer: {exc}") from exc
    visibility = fields[4]
    visibility = "public" if visibility == "True" else _visibility_from_field(visibility)
    return (
        fields[0], size, fields[2] or None, fields[3] or None, visibility, properties,
        fields[6] or None, fields[7] or None, fields[8] or None, fields[9] or None,
        min_ram, min_disk, fields[12].strip() == "True", fields[13].strip() == "True",
    )  # fmt: skip


_new_image = object.__new__


@functools.lru_cache(maxsize=1 << 15)
def _plain_dict(field: str) -> dict[str, str] | None:
    """The dict a properties field matching ``_PLAIN_DICT`` stands for; None if not.

    A copy usually has its master's very properties field, in every region file: the same
    text is parsed once. The dict is cached: callers copy it, never change it.
    """
    text = field.strip() or "{}"
    if _PLAIN_DICT.fullmatch(text) is None:
        return None
    return {key[1:-1]: value[1:-1] for key, value in _PAIRS.findall(text)}


def _str_properties(properties: dict[Any, Any]) -> dict[str, str]:
    # Values are strings in Glance v2; old backups may hold ints. (Type checks inline:
    # this runs for every image made by hand and every old backup row.)
    return {
        k if type(k) is str else str(k): v if type(v) is str else _as_str(v)
        for k, v in dict(properties).items()
    }


def _literal_dict(field: str) -> dict[Any, Any]:
    try:
        props = ast.literal_eval(field.strip() or "{}")
    # literal_eval also raises TypeError ({[1]: 2}), MemoryError and RecursionError
    # (absurdly nested input); all mean "not a literal dict", never a crash.
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"properties field is not a literal dict: {field!r}") from exc
    if not isinstance(props, dict):
        raise ValueError(f"properties field is not a dict: {field!r}")
    return props


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return value if isinstance(value, str) else str(value)


def _visibility_to_field(visibility: str) -> str:
    return {"public": "True", "private": "False"}.get(visibility, visibility)


def _visibility_from_field(text: str) -> str:
    text = text.strip()
    if text == "True":
        return "public"
    if text in ("False", ""):
        return "private"
    if text not in VISIBILITIES:
        raise ValueError(f"unknown visibility {text!r}")
    return text
