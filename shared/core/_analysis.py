"""What an extra analysis of a finished run sees, and how it can train more."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from ._optim import OptimizerConfig
from ._options import Progress
from ._protocol import Implementation, ImplementationFactory
from ._setup import RunSetup, build
from ._spec import AnalysisResult, Batches, ModelSpec, Settings
from ._trajectory import Trajectory


@dataclass
class AnalysisContext:
    """What an extra analysis sees of a finished run, and how it can train more.

    **Fields:** `spec`, `settings`, `config`, `optimizer`, `batches`, `impls` (the run's
    implementations), `trajectories`, `outputs` (held-out outputs by trajectory), `evals`,
    `reference` (its key), `progress`, and `factories` (label -> factory, to rebuild an
    implementation with another config).
    """

    spec: ModelSpec
    settings: Settings
    config: Any
    optimizer: OptimizerConfig
    batches: Batches
    impls: list[Implementation]
    trajectories: dict[str, Trajectory]
    outputs: dict[str, np.ndarray]
    evals: dict[str, dict[str, float]]
    reference: str
    factories: dict[str, ImplementationFactory]
    progress: Progress | None
    _run: RunSetup

    def train(
        self,
        impl: Implementation,
        config: Any,
        loop: str = "harness",
        seed: int | None = None,
        batches: Batches | None = None,
    ) -> Trajectory:
        """Train `impl` (built with `config`) in one loop, from the model's initial values;
        `seed` picks other per-step keys (random models), `batches` other data."""
        return self._run.train(impl, loop, config, seed, batches)

    @property
    def held_out(self) -> Any:
        """The held-out batch of the model's evaluation (`None` without one)."""
        return self._run.held_out

    def evaluate(
        self, impl: Implementation, trajectory: Trajectory
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Held-out outputs and metrics of a trajectory of `impl`."""
        return self._run.evaluate(impl, trajectory)

    def rebuild(self, name: str, config: Any) -> Implementation | None:
        """The implementation called `name`, built anew with `config` (`None`: unknown)."""
        factory = self.factories.get(name)
        return None if factory is None else build(name, factory, config, self.spec)


def run_analyses(
    run: RunSetup,
    impls: Sequence[tuple[str, Implementation]],
    factories: Sequence[tuple[str, ImplementationFactory]],
    trajectories: dict[str, Trajectory],
    outputs: dict[str, np.ndarray],
    evals: dict[str, dict[str, float]],
    reference: str,
    progress: Progress | None,
) -> list[AnalysisResult]:
    """Every extra analysis of the spec on a finished run (those with something to say)."""
    context = AnalysisContext(
        run.spec,
        run.settings,
        run.config,
        run.optimizer,
        run.batches,
        [impl for _, impl in impls],
        trajectories,
        outputs,
        evals,
        reference,
        {impl.name: factory for (_, factory), (_, impl) in zip(factories, impls, strict=True)},
        progress,
        run,
    )
    results = (analysis(context) for analysis in run.spec.analyses)
    return [a for a in results if a is not None]


def eval_differences(outputs: dict[str, Any], reference: str) -> dict[str, float]:
    """Per trajectory, the largest |difference| of its held-out outputs from the reference's."""
    if reference not in outputs:
        return {}
    ref_leaves = jax.tree.leaves(outputs[reference])

    def largest(v: Any) -> float:  # outputs may be pytrees: the largest over every leaf
        pairs = zip(jax.tree.leaves(v), ref_leaves, strict=True)
        return max(float(np.max(np.abs(np.float64(a) - b), initial=0.0)) for a, b in pairs)

    return {k: largest(v) for k, v in outputs.items() if k != reference}
