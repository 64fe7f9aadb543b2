"""Key provenance: which key each dropout call actually used, traced from the frameworks' own
calls (every built-in dropout draws its mask with `jax.random.bernoulli`), not re-derived.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from shared.core import AnalysisContext, AnalysisResult, unstack


@dataclass
class KeyLog:
    """The keys drawn while recording, in call order: one `(2,)` uint32 array each."""

    keys: list[tuple[int, ...]] = field(default_factory=list)

    def reused(self) -> list[tuple[int, int]]:
        """Pairs `(i, j)`, i < j, of calls that drew with the same key."""
        first: dict[tuple[int, ...], int] = {}
        out = []
        for j, key in enumerate(self.keys):
            if key in first:
                out.append((first[key], j))
            else:
                first[key] = j
        return out

    def hex(self, i: int) -> str:
        return "".join(f"{word:08x}" for word in self.keys[i])


_LOGS: list[KeyLog] = []
"""The logs being recorded into, innermost last."""
_ORIGINAL = jax.random.bernoulli


def _record(data: Any) -> None:
    # Looked up at call time: a program compiled while an earlier log was recorded writes
    # into the current one.
    if _LOGS:
        _LOGS[-1].keys.append(tuple(int(w) for w in np.asarray(data).reshape(-1)))


def _bernoulli(key: jax.Array, *args: Any, **kwargs: Any) -> jax.Array:
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    jax.debug.callback(_record, data, ordered=True)
    return _ORIGINAL(key, *args, **kwargs)


@contextlib.contextmanager
def recording_keys() -> Iterator[KeyLog]:
    """Record the key of every `jax.random.bernoulli` call traced while the block runs.

    The frameworks' dropout layers look `bernoulli` up on the `jax.random` module when they
    run, so wrapping it there sees Linen's, NNX's, Haiku's and Equinox's draws alike. Under
    `jax.jit` the key is read with an ordered `jax.debug.callback`. Only functions traced
    while recording call it: a function jitted and compiled before, for the same shapes, is
    not traced again (give the recorded run shapes of its own, or clear JAX's caches).
    """
    log = KeyLog()
    _LOGS.append(log)
    jax.random.bernoulli = _bernoulli  # type: ignore[assignment]
    try:
        yield log
    finally:
        jax.effects_barrier()
        _LOGS.remove(log)
        if not _LOGS:
            jax.random.bernoulli = _ORIGINAL


PROVENANCE_STEPS = 3
"""Steps of each loop traced for the key table (the keys of later steps follow the same
derivation)."""


def key_provenance(context: AnalysisContext) -> AnalysisResult | None:
    """`--native`: the key each framework's dropout used at each step, in the harness loop
    and in its own native loop; every key must be new, and both loops must draw the same."""
    if context.settings.mode != "native":
        return None
    steps = min(PROVENANCE_STEPS, len(unstack(context.batches)))
    # The first steps' batches less their last example: shapes no other run has compiled,
    # so every jitted step is traced afresh while recording.
    first = jax.tree.map(lambda a: a[:steps, :-1] if a.shape[1] > 1 else a[:steps], context.batches)
    logs: dict[str, dict[str, KeyLog]] = {}
    for impl in context.impls:
        logs[impl.name] = {}
        for loop in ("harness", "native"):
            if loop == "native" and not hasattr(impl, "native_loop"):
                continue
            with recording_keys() as log:
                context.train(impl, context.config, loop, batches=first)
            if len(log.keys) < steps:  # compiled before for these shapes: trace anew
                jax.clear_caches()
                with recording_keys() as log:
                    context.train(impl, context.config, loop, batches=first)
            logs[impl.name][loop] = log
    rows, payload, problems = [], {}, []
    for name, loops in logs.items():
        payload[name] = {
            loop: [log.hex(i) for i in range(len(log.keys))] for loop, log in loops.items()
        }
        for loop, log in loops.items():
            for i, j in log.reused():
                problems.append(f"{name}/{loop}: draws {i} and {j} used the same key {log.hex(i)}")
            if len(log.keys) != steps:
                problems.append(f"{name}/{loop}: {len(log.keys)} dropout draws in {steps} steps")
        if len(loops) == 2 and loops["harness"].keys != loops["native"].keys:
            problems.append(f"{name}: the native loop drew other keys than the harness loop")
        harness = loops["harness"]
        for i in range(len(harness.keys)):
            same = (
                "yes"
                if "native" in loops and loops["native"].keys[i : i + 1] == harness.keys[i : i + 1]
                else "no"
            )
            rows.append((name, str(i + 1), harness.hex(i), same))
    return AnalysisResult(
        key="keys",
        payload={"steps": steps, "keys": payload, "problems": problems},
        title=f"the key each dropout call used, traced ({steps} steps, harness loop)",
        head=("framework", "step", "key data (hex)", "native loop drew it too"),
        rows=rows,
        notes=problems or ["no key was used twice; each native loop drew the harness's keys"],
        ok=not problems,
    )
