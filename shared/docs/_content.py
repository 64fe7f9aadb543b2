"""What a model contributes to the idioms guide: concepts cut from its framework files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class Topic(NamedTuple):
    """One page of the guide: its file name (`docs/guide/<slug>.md`), title and lead."""

    slug: str
    title: str
    lead: str


TOPICS: tuple[Topic, ...] = (
    Topic(
        "parameters-and-state",
        "Parameters and state",
        "Where each framework declares a parameter and a piece of state, how the forward pass "
        "writes the state, and how params and state are told apart.",
    ),
    Topic("init", "Initialise", "How each framework creates the variables without updating them."),
    Topic(
        "train-and-eval",
        "Train and eval",
        "The forward pass with its state update, as the loss sees it, and without it, for eval.",
    ),
    Topic(
        "optimizer",
        "The optimizer step",
        "Where the optax state lives, and one jitted training step in each framework's own style.",
    ),
    Topic(
        "batchnorm",
        "BatchNorm and its defaults",
        "Each framework's built-in BatchNorm in an MLP; the defaults that differ, and their "
        "tests, are in [BatchNorm's defaults](../batchnorm.md).",
    ),
    Topic(
        "convolutions",
        "Convolutions and layouts",
        "A small ResNet in each framework: its built-in convolution and BatchNorm, the image "
        "and kernel layouts (NHWC and HWIO, Equinox's CHW and OIHW), and the padding every "
        "framework can express.",
    ),
    Topic(
        "randomness",
        "Randomness",
        "Dropout: where each framework keeps its keys and how each training step gets one.",
    ),
    Topic(
        "caches",
        "Caches for decoding",
        "A causal self-attention decoder, trained on the full sequence, decoded one token at a "
        "time: where each framework keeps the key/value cache, and what it takes to size it.",
    ),
    Topic(
        "data-parallel",
        "Data parallel",
        "The argument that makes a layer's statistics cross devices; the measurements are in "
        "[Data parallel](../parallel.md).",
    ),
    Topic(
        "checkpoints",
        "Checkpoints",
        "What each framework's own loop hands to orbax; resume, audit and transplant are in "
        "[Checkpoints](../checkpoints.md).",
    ),
    Topic(
        "layer-trace",
        "Inside one call",
        "How each framework shows every layer's input and output from one forward pass; the "
        "first diverging layer is in [Comparison](../comparison.md#the-first-diverging-layer).",
    ),
    Topic(
        "fast-loops",
        "Fast training loops",
        "Each framework's own fastest way to run the same step; the timings are in "
        "[Performance](../performance.md).",
    ),
)
"""The guide's pages, in reading order; every concept names one of them."""


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
    - `topic`: the guide page it belongs on, a `Topic.slug` of `TOPICS`.
    """

    key: str
    title: str
    differs: str
    files: Mapping[str, str]
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)
    topic: str = "parameters-and-state"


@dataclass(frozen=True)
class ModelDocs:
    """A model's part of the idioms guide: its concepts, and the traps met writing it."""

    concepts: Sequence[Concept] = ()
    gotchas: Sequence[tuple[str, str]] = field(default_factory=tuple)
