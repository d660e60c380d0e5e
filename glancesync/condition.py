"""A safe evaluator for metadata_condition (an AST whitelist; no eval of arbitrary code)."""

from __future__ import annotations

from typing import Any


class Condition:
    """A compiled, vetted expression over ``image`` and ``metadata_set``."""

    def __init__(self, source: str, where: str = "metadata_condition") -> None:
        raise NotImplementedError

    def __call__(self, image: Any, metadata_set: frozenset[str]) -> bool:
        raise NotImplementedError
