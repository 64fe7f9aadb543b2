"""What `state-rosetta bench` measures: its options, and the workloads they select (one
model at one shape each)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .._registry import MODELS, implementations, load_spec, make
from ..core import BenchShape, Implementation, InputsFn, LossFn


@dataclass(frozen=True)
class Workload:
    """One model at one shape: what to build, what to feed it, what to compare against.

    **Fields:**

    - `model`, `shape`: labels for the rows (`"bias-adder"`, `"B8xD4"`).
    - `size`: `"tiny"` (dispatch-bound) or `"large"` (compute- or memory-bound).
    - `impls`: the implementations to measure.
    - `make`: implementation name -> implementation.
    - `loss`, `inputs`: as for `TrainStep`.
    - `batches`: K batches stacked on axis 0, on the device (one sample is K steps).
    - `samples`: how many timed samples per path.
    - `baseline`: the (impl, path) every ratio is taken against.
    - `depth`: the model's depth, for a workload of `bench --depth` (else `None`).
    - `planned`: also ask XLA for each jitted path's planned bytes (one more compile each;
      the standard full run only).
    - `cold`: compile each path from an empty cache, so that its compile time is its own
      (off for `--quick` and `--depth`, where identical programs reuse the first one's
      compilation).
    """

    model: str
    shape: str
    size: str
    impls: tuple[str, ...]
    make: Callable[[str], Implementation]
    loss: LossFn
    inputs: InputsFn | None
    batches: Any
    samples: int
    baseline: tuple[str, str]
    depth: int | None = None
    planned: bool = False
    cold: bool = True

    @property
    def steps(self) -> int:
        return int(jax.tree.leaves(self.batches)[0].shape[0])

    def first_input(self) -> jax.Array:
        batch = jax.tree.map(lambda a: a[0], self.batches)
        return jnp.asarray(batch if self.inputs is None else self.inputs(batch))


@dataclass(frozen=True)
class BenchOptions:
    """Which models and implementations to measure; `quick` is a smoke test under a minute.

    `models` defaults to every built-in model whose spec has bench shapes (with `depths`: a
    depth family, `ModelSpec.bench_depth`).
    """

    models: tuple[str, ...] | None = None
    impls: tuple[str, ...] | None = None  # None: every implementation of each model
    quick: bool = False
    seed: int = 0
    depths: tuple[int, ...] | None = None  # `bench --depth`: the depths to sweep

    def model_names(self) -> tuple[str, ...]:
        if self.models is not None:
            return self.models
        if self.depths is not None:
            return tuple(m for m in MODELS if load_spec(m).bench_depth is not None)
        return tuple(m for m in MODELS if load_spec(m).bench is not None)

    def shapes(self, model: str, rng: np.random.Generator) -> list[tuple[int | None, BenchShape]]:
        """The model's bench shapes, each with its depth (`None` outside `bench --depth`)."""
        spec = load_spec(model)
        if self.depths is None:
            if spec.bench is None:
                raise ValueError(f"bench: model {model} has no bench shapes in its spec")
            return [(None, shape) for shape in spec.bench(self.quick, rng)]
        if spec.bench_depth is None:
            with_depth = [m for m in MODELS if load_spec(m).bench_depth is not None]
            raise ValueError(
                f"bench --depth: model {model} has no depth family in its spec; expected one "
                f"of {', '.join(with_depth) or 'none'}"
            )
        bench_depth = spec.bench_depth
        return [(d, shape) for d in self.depths for shape in bench_depth(d, self.quick, rng)]

    def workloads(self) -> list[Workload]:
        rng = np.random.default_rng(self.seed)
        out = []
        for model in self.model_names():
            spec = load_spec(model)
            for depth, shape in self.shapes(model, rng):
                out.append(
                    Workload(
                        model=model,
                        shape=shape.label,
                        size=shape.size,
                        impls=self.selected(list(implementations(model)), shape.baseline[0]),
                        make=functools.partial(_make, model=model, config=shape.config),
                        loss=spec.loss,
                        inputs=spec.inputs,
                        batches=jax.tree.map(jnp.asarray, shape.batches),
                        samples=shape.samples,
                        baseline=shape.baseline,
                        depth=depth,
                        planned=depth is None and not self.quick,
                        # A depth run reports no compile times; without the cold start its
                        # paths keep their programs (no recompile in the first round), and
                        # the time saved buys the large width more samples.
                        cold=depth is None and not self.quick,
                    )
                )
        return out

    def selected(self, available: Sequence[str], baseline: str) -> tuple[str, ...]:
        if self.impls is None:
            return tuple(available)
        if baseline not in self.impls:
            raise ValueError(f"bench: {baseline!r} is the baseline and must be included")
        return tuple(i for i in self.impls if i in available)


def _make(name: str, *, model: str, config: Any) -> Implementation:
    return make(name, config, model)
