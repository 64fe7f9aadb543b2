"""One checkpointed run: which model, implementation, loop and settings, and its objects."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import jax

from .._registry import implementations, is_registered, load_factory, load_spec
from ..core import (
    LOOPS,
    OPTIMIZERS,
    Implementation,
    ModelSpec,
    RunOptions,
    RunSetup,
    Trajectory,
    build,
    contained,
    setup_run,
)
from ._errors import CheckpointError
from ._trainers import Trainer, make_trainer


@dataclass(frozen=True)
class Case:
    """What a checkpoint was trained with: enough to build its objects anew, anywhere.

    **Fields:** `model` (a built-in model's name, or `FILE.py:ATTR`), `implementation` (a
    registered name, or `MODULE:ATTR`), `loop`, `steps` (the whole run's), `optimizer`,
    `lr` (`None`: the model's), `seed`, `mode` (`None`: the model's first), `batch`,
    `values` (the model's own options).
    """

    model: str
    implementation: str
    loop: str
    steps: int
    optimizer: str = "sgd"
    lr: float | None = None
    seed: int = 0
    mode: str | None = None
    batch: int | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Case:
        """A case from a checkpoint's metadata, every field's type checked (a
        [`CheckpointError`][] names the first that is wrong): the metadata is data from
        whoever sent the checkpoint."""
        if not isinstance(data, dict):
            raise CheckpointError(f"its run is {type(data).__name__}, expected an object")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in ("model", "implementation", "loop", "steps"):
            if key not in fields:
                raise CheckpointError(f"its run names no {key}")
        for key, kinds in _FIELD_TYPES.items():
            if key in fields and (
                not isinstance(fields[key], kinds) or isinstance(fields[key], bool)
            ):
                raise CheckpointError(f"its run's {key} is {fields[key]!r}, of the wrong type")
        if fields["loop"] not in LOOPS or fields.get("optimizer", "sgd") not in OPTIMIZERS:
            raise CheckpointError(f"its run names an unknown loop or optimizer: {fields}")
        if fields["steps"] < 1:
            raise CheckpointError(f"its run's steps is {fields['steps']}, expected >= 1")
        return cls(**fields)

    @property
    def label(self) -> str:
        return f"{self.implementation}/{self.loop}/{self.optimizer}"


_FIELD_TYPES: dict[str, Any] = {
    "model": str,
    "implementation": str,
    "loop": str,
    "steps": int,
    "optimizer": str,
    "lr": (int, float, type(None)),
    "seed": int,
    "mode": (str, type(None)),
    "batch": (int, type(None)),
    "values": dict,
}


class Built:
    """A case's spec, run setup and implementation, and trainers from its initial values."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.spec: ModelSpec = load_spec(case.model)
        options = RunOptions(
            loops=(case.loop,),
            steps=case.steps,
            batch=case.batch,
            optimizer=case.optimizer,
            lr=case.lr,
            seed=case.seed,
            mode=case.mode,
            values=case.values,
        )
        self.setup: RunSetup = setup_run(self.spec, options)
        registry = implementations(self.spec.name) if is_registered(case.model) else {}
        factory = load_factory(registry.get(case.implementation, case.implementation))
        self.impl: Implementation = build(
            case.implementation, factory, self.setup.config, self.spec
        )
        self.tx = self.setup.optimizer.make()

    def trainer(self) -> Trainer:
        """A trainer at the model's initial values (freshly built objects)."""
        with contained(f"implementation {self.case.implementation}: its init"):
            params, state = self.setup.initial(self.impl, self.setup.config)
        return make_trainer(
            self.case.loop, self.impl, params, state, self.tx, self.spec.loss, self.spec.inputs
        )

    def segment(self, start: int, stop: int) -> tuple[Any, jax.Array | None]:
        """The batches and keys of steps `start + 1 .. stop` (stacked)."""
        batches = jax.tree.map(lambda a: a[start:stop], self.setup.batches)
        keys = None if self.setup.keys is None else self.setup.keys[start:stop]
        return batches, keys

    @property
    def identity(self) -> dict[str, Any]:
        """What a checkpoint of this case must carry to be restored into its objects."""
        c = self.case
        return {"model": self.spec.name, "implementation": c.implementation, "loop": c.loop}

    def train(self, trainer: Trainer, start: int, stop: int) -> Trajectory:
        """Steps `start + 1 .. stop` of `trainer`, recorded from its current values."""
        out = Trajectory()
        with contained(f"training {self.case.label}"):
            out.record_initial(*trainer.canonical())
            trainer.run(*self.segment(start, stop), out)
        return out

    def uninterrupted(self) -> Trajectory:
        """All `steps` in one go, as `compare` trains them (`run_loop`)."""
        return self.setup.train(self.impl, self.case.loop)
