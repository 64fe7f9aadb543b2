"""What a model contributes to the idioms guide: concepts cut from its framework files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Concept:
    """One idiom, shown in every framework.

    **Arguments:**

    - `key`: the region in each file is `"<framework region prefix>-<key>"`.
    - `title`: the section's title.
    - `differs`: what differs between the frameworks, and why.
    - `files`: framework (registry name) -> the file that holds its region.
    - `extra`: framework -> more regions of the same file, shown after its main one (the
      region `"<prefix>-<name>"` for each name), for a framework with more than one idiom.
    """

    key: str
    title: str
    differs: str
    files: Mapping[str, str]
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelDocs:
    """A model's part of the idioms guide: its concepts, and the traps met writing it."""

    concepts: Sequence[Concept] = ()
    gotchas: Sequence[tuple[str, str]] = field(default_factory=tuple)
