"""Aligning two models' trees with no user mapping: by data-flow order and by shape.

Two ports of one model name their leaves differently (`mlp/~/linear_0.w` against
`layers.0.kernel`) but compute them in the same order. Each side's params are ordered by
where its forward pass first reads them, its state by where the pass writes it (see
`_dataflow`), and the i-th leaf of one side is matched with the i-th of the other when their
shapes agree, or agree once leading axes of size 1 are dropped (Haiku's BatchNorm keeps
(1, 1, 1, C) where the others keep (C,)). Layout changes that permute values (an Equinox
`Linear`'s (out, in) weight) are undone by that framework's wrapper, which knows its own
modules, before the leaves get here.

State whose meaning differs between the two sides (each wrapper tags its leaves with what
they mean, `meanings`) is set aside, with the reason, rather than refusing the run.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np

Shapes = Mapping[str, tuple[int, ...]]
"""Canonical name -> shape, one group (params or state) of one side."""


class AlignmentError(ValueError):
    """The two trees could not be matched unambiguously; the message lists both sides'
    unmatched names and a mapping to edit, which `mapping=` then takes."""


def squeezed(shape: Sequence[int]) -> tuple[int, ...]:
    """`shape` without its leading axes of size 1 (a scalar stays a scalar)."""
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def compatible(a: Sequence[int], b: Sequence[int]) -> bool:
    """The same values under a reshape that only adds or drops leading axes of size 1."""
    return tuple(a) == tuple(b) or squeezed(a) == squeezed(b)


@dataclass(frozen=True)
class Match:
    """One matched leaf: its group, the reference's name and shape, the port's."""

    group: str
    ref: str
    port: str
    ref_shape: tuple[int, ...]
    port_shape: tuple[int, ...]

    @property
    def reshaped(self) -> bool:
        return self.ref_shape != self.port_shape


@dataclass(frozen=True)
class SetAside:
    """State compared on neither side: the leaves of each and why."""

    ref: tuple[str, ...]
    port: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Alignment:
    """How the port's leaves map onto the reference's."""

    matches: tuple[Match, ...]
    set_aside: tuple[SetAside, ...] = ()
    source: str = "data-flow order and shape"
    by_port: dict[tuple[str, str], Match] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        self.by_port.update({(m.group, m.port): m for m in self.matches})

    def names(self, group: str) -> list[str]:
        """The reference's names of one group that are compared."""
        return [m.ref for m in self.matches if m.group == group]

    def to_ref(self, group: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """The port's canonical values of one group under the reference's names and shapes."""
        out = {}
        for m in self.matches:
            if m.group == group:
                v = values[m.port]
                out[m.ref] = jnp.reshape(v, m.ref_shape) if m.reshaped else v
        return out

    def to_port(
        self, group: str, values: Mapping[str, Any], fill: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The reference's canonical values of one group under the port's names; the port's
        leaves that are set aside come from `fill` (the port's own init)."""
        out = dict(fill)
        for m in self.matches:
            if m.group == group:
                v = values[m.ref]
                out[m.port] = jnp.reshape(v, m.port_shape) if m.reshaped else v
        return out

    def table(self) -> list[tuple[str, str, str]]:
        """Rows (reference leaf, port leaf, note) for a report."""
        rows = []
        for m in self.matches:
            note = f"reshaped {m.port_shape} -> {m.ref_shape}" if m.reshaped else ""
            rows.append((f"{m.group}.{m.ref}", f"{m.group}.{m.port}", note))
        for s in self.set_aside:
            rows.append((", ".join(s.ref), ", ".join(s.port), f"not compared: {s.reason}"))
        return rows


Mapping_ = Mapping[str, str] | Callable[[str], str | None]
"""A user's mapping: `"params.REF" -> "params.PORT"` (a dict), or a function of the
reference's qualified name returning the port's (or `None` to leave it to the order)."""


def _ordered(shapes: Shapes, order: Callable[[str], Any]) -> list[str]:
    return sorted(shapes, key=order)


def _edit_text(group: str, ref: Sequence[str], port: Sequence[str]) -> str:
    pairs = ", ".join(f'"{group}.{r}": "{group}.{p}"' for r, p in zip(ref, port, strict=False))
    return "{" + pairs + "}"


def align_group(
    group: str,
    ref: Shapes,
    port: Shapes,
    ref_order: Callable[[str], Any],
    port_order: Callable[[str], Any],
    *,
    mapping: Mapping[str, str] | None = None,
    ref_meanings: Mapping[str, str] | None = None,
    port_meanings: Mapping[str, str] | None = None,
    labels: tuple[str, str] = ("reference", "port"),
) -> tuple[list[Match], list[SetAside]]:
    """Match one group's leaves (see the module's docstring); raise `AlignmentError` when
    a leaf is left over or two candidates cannot be told apart."""
    mapping = {} if mapping is None else mapping
    matches: list[Match] = []
    taken_ref: set[str] = set()
    taken_port: set[str] = set()
    for r, p in mapping.items():
        if r not in ref or p not in port:
            side, name, known = (labels[0], r, ref) if r not in ref else (labels[1], p, port)
            raise AlignmentError(
                f"mapping: {group}.{name} names no leaf of the {side}; its {group} are "
                f"{', '.join(sorted(known)) or '(none)'}"
            )
        if not compatible(ref[r], port[p]):
            raise AlignmentError(
                f"mapping: {labels[0]} {group}.{r} has shape {ref[r]}, {labels[1]} {group}.{p} "
                f"{port[p]}; expected the same shape (up to leading axes of size 1)"
            )
        matches.append(Match(group, r, p, tuple(ref[r]), tuple(port[p])))
        taken_ref.add(r)
        taken_port.add(p)
    rest_ref = [n for n in _ordered(ref, ref_order) if n not in taken_ref]
    rest_port = [n for n in _ordered(port, port_order) if n not in taken_port]
    for side, names, shapes, order in (
        (labels[0], rest_ref, ref, ref_order),
        (labels[1], rest_port, port, port_order),
    ):
        _check_ties(group, side, names, shapes, order, rest_ref, rest_port)
    set_aside: list[SetAside] = []
    if len(rest_ref) != len(rest_port):
        rest_ref, rest_port, aside = _by_meaning(
            rest_ref, rest_port, ref_meanings or {}, port_meanings or {}, labels
        )
        set_aside.extend(aside)
    ok = len(rest_ref) == len(rest_port) and all(
        compatible(ref[r], port[p]) for r, p in zip(rest_ref, rest_port, strict=True)
    )
    if not ok:
        bad = next(
            (
                i
                for i, (r, p) in enumerate(zip(rest_ref, rest_port, strict=False))
                if not compatible(ref[r], port[p])
            ),
            min(len(rest_ref), len(rest_port)),
        )
        where = (
            f"{labels[0]} {group}.{rest_ref[bad]} {ref[rest_ref[bad]]} against {labels[1]} "
            f"{group}.{rest_port[bad]} {port[rest_port[bad]]}"
            if bad < min(len(rest_ref), len(rest_port))
            else f"{len(rest_ref)} {labels[0]} leaves against {len(rest_port)} {labels[1]} leaves"
        )
        raise AlignmentError(
            f"cannot align the {group} by data-flow order and shape ({where}); {labels[0]}: "
            f"{', '.join(f'{n} {ref[n]}' for n in rest_ref) or '(none)'}; {labels[1]}: "
            f"{', '.join(f'{n} {port[n]}' for n in rest_port) or '(none)'}; pass mapping= with "
            f"the pairs, e.g. {_edit_text(group, rest_ref, rest_port)}"
        )
    for r, p in zip(rest_ref, rest_port, strict=True):
        matches.append(Match(group, r, p, tuple(ref[r]), tuple(port[p])))
    return matches, set_aside


def _check_ties(
    group: str,
    side: str,
    names: list[str],
    shapes: Shapes,
    order: Callable[[str], Any],
    rest_ref: list[str],
    rest_port: list[str],
) -> None:
    """Two leaves of one shape that the forward pass reads (or writes) at one place cannot
    be told apart by order: ambiguous, unless a mapping names them."""
    for a, b in itertools.pairwise(names):
        if order(a)[0] == order(b)[0] and compatible(shapes[a], shapes[b]):
            raise AlignmentError(
                f"ambiguous {group}: the {side}'s {a} and {b} have one shape {shapes[a]} "
                f"and no data-flow order between them; pass mapping= with the pairs, e.g. "
                f"{_edit_text(group, rest_ref, rest_port)}"
            )


def _by_meaning(
    ref: list[str],
    port: list[str],
    ref_meanings: Mapping[str, str],
    port_meanings: Mapping[str, str],
    labels: tuple[str, str],
) -> tuple[list[str], list[str], list[SetAside]]:
    """Set aside the leaves of each side whose declared meaning the other side has no
    leaf of; the rest go on to be matched by order."""
    ref_kinds = {ref_meanings[n] for n in ref if n in ref_meanings}
    port_kinds = {port_meanings[n] for n in port if n in port_meanings}
    aside_ref = [n for n in ref if n in ref_meanings and ref_meanings[n] not in port_kinds]
    aside_port = [n for n in port if n in port_meanings and port_meanings[n] not in ref_kinds]
    if not aside_ref or not aside_port:
        return ref, port, []
    reason = (
        f"they differ in meaning: the {labels[0]} keeps "
        f"{'; '.join(sorted({ref_meanings[n] for n in aside_ref}))}, the {labels[1]} keeps "
        f"{'; '.join(sorted({port_meanings[n] for n in aside_port}))}"
    )
    kept_ref = [n for n in ref if n not in aside_ref]
    kept_port = [n for n in port if n not in aside_port]
    return kept_ref, kept_port, [SetAside(tuple(aside_ref), tuple(aside_port), reason)]


def split_mapping(mapping: Mapping[str, str] | None) -> dict[str, dict[str, str]]:
    """A user's `{"params.REF": "params.PORT", ...}` by group, checked."""
    out: dict[str, dict[str, str]] = {"params": {}, "state": {}}
    for r, p in (mapping or {}).items():
        rg, _, rn = str(r).partition(".")
        pg, _, pn = str(p).partition(".")
        if rg not in out or pg != rg or not rn or not pn:
            raise AlignmentError(
                f"mapping: {r!r} -> {p!r}; expected 'params.NAME' -> 'params.NAME' or "
                "'state.NAME' -> 'state.NAME'"
            )
        out[rg][rn] = pn
    return out


def shapes_of(values: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(np.shape(v)) for k, v in values.items()}


RUNNING_AVERAGE = "a running average with no debiasing (mean from 0, variance from 1)"
"""What Flax's and Keras's BatchNorm statistics mean (each wrapper tags its leaves)."""
