"""What an extra analysis of a finished run sees, and how it can train more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._optim import OptimizerConfig
from ._options import Progress
from ._protocol import Implementation, ImplementationFactory
from ._setup import RunSetup, build
from ._spec import Batches, ModelSpec, Settings
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
