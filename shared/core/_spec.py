"""A model spec: everything the harness needs to know about one model, and nothing else.

The harness is generic: it trains any implementation of any model whose spec says how to
build the config, where the data come from, how a batch splits into model input and loss
input, what the loss is, which implementation is the reference, how far implementations may
differ (and why), and which canonical names the params and state carry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from ._harness import InputsFn, LossFn
from ._optim import OptimizerConfig
from ._protocol import Batch, Implementation, Params, State
from ._tolerance import UNDECLARED, Tolerance, Tolerances
from ._trajectory import Trajectory

Batches: TypeAlias = Any
"""One batch per step, stacked on a leading axis: an array or any pytree of arrays."""


@dataclass(frozen=True)
class Option:
    """A command-line option that a model adds to `state-rosetta compare`.

    **Arguments:**

    - `flag`: the option, e.g. `"--momentum"`.
    - `type`: converts the text (`int`, `float`, ...); `None` makes a switch (`store_true`).
    - `default`: the value when the option is not given.
    - `help`: one line for `--help`.
    - `field`: the key in [`Settings.values`][]; by default the flag without dashes, with
      `-` turned into `_`.
    - `aliases`: other flags for the same option (old names kept working).
    """

    flag: str
    type: Callable[[str], Any] | None
    default: Any
    help: str
    field: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.field or self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Settings:
    """What one run asks of a model: the generic options and the model's own.

    **Fields:**

    - `mode`: one of the spec's `modes` (`""` for a model without modes).
    - `steps`, `batch`: as given (`None`: the model's default).
    - `seed`: seeds the data, the init and the per-step keys.
    - `optimizer`: the optimizer's name (`"sgd"`, `"adam"`, ...).
    - `data`: the user's own data (`--data`), or `None`.
    - `values`: the model's own options, by [`Option.key`][], defaults filled in.
    """

    mode: str = ""
    steps: int | None = None
    batch: int | None = None
    seed: int = 0
    optimizer: str = "sgd"
    data: np.ndarray | None = field(default=None, compare=False)
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]


@dataclass(frozen=True)
class Evaluation:
    """An eval on held-out data after the last step, compared across implementations.

    The final canonical params and state are loaded with `from_canonical` and the model is
    called with `train=False` on the held-out inputs.

    **Arguments:**

    - `data`: `(config, settings) -> one held-out batch`.
    - `metrics`: `(outputs, batch) -> {"loss": ..., "accuracy": ...}`, plain floats.
    - `tolerance`: how far each implementation's outputs may be from the reference's.
    """

    data: Callable[[Any, Settings], Batch]
    metrics: Callable[[np.ndarray, Batch], dict[str, float]]
    tolerance: Tolerance


@dataclass(frozen=True)
class AnalysisResult:
    """What an extra analysis adds to a run's report and JSON.

    **Fields:**

    - `key`: its key under the JSON's `comparison` (e.g. `"drift"`).
    - `payload`: its JSON value.
    - `title`, `head`, `rows`: a table for the terminal (rows of plain strings).
    - `notes`: lines printed under the table.
    - `ok`: `False` fails the run (exit 1), as a divergence does.
    - `plot`: writes a figure of the analysis to the path it is given (`--plot`), or `None`.
    """

    key: str
    payload: Any
    title: str
    head: Sequence[str]
    rows: Sequence[Sequence[str]]
    notes: Sequence[str] = ()
    ok: bool = True
    plot: Callable[[Path], None] | None = None


Analysis: TypeAlias = Callable[[Any], "AnalysisResult | None"]
"""An extra analysis of a finished run: it takes the run's [`AnalysisContext`][] and
returns its result, or `None` when it has nothing to say for this run. (Typed `Any` here:
the context refers to the spec, so naming its type would make the two modules import each
other.)"""


@dataclass(frozen=True)
class BenchShape:
    """One shape at which `state-rosetta bench` times a model.

    **Fields:**

    - `label`: e.g. `"B8xD4"`.
    - `size`: `"tiny"` (dispatch-bound) or `"large"` (compute- or memory-bound).
    - `config`: the model's config at this shape.
    - `batches`: K batches stacked on axis 0 (one timed sample is K steps).
    - `samples`: how many timed samples per path.
    - `baseline`: the `(implementation, path)` every ratio is taken against.
    """

    label: str
    size: str
    config: Any
    batches: Batches
    samples: int
    baseline: tuple[str, str]


@dataclass(frozen=True)
class ModelSpec:
    """One model, described to the harness. The registry holds one per built-in model;
    `--model FILE.py:ATTR` and [`cross_validate`][] take the user's own.

    **Arguments:**

    - `name`: the model's name; every implementation's `model` attribute must equal it.
    - `config_type`: the type of the config that implementations' factories take.
    - `configure`: `settings -> config`, validated (raise `ValueError` naming the option).
    - `data`: `(config, settings) -> batches`, the default data: one batch per step,
      stacked (`settings.steps`, or the spec's `steps` when `None`).
    - `loss`: `(model output, batch) -> scalar loss`.
    - `inputs`: `batch -> model input` (default: the batch itself).
    - `user_data`: `(config, array, settings) -> batches` for `--data FILE.npy`; `None`
      refuses `--data`. The config may depend on the data (see `configure`, which sees
      `settings.data`).
    - `reference`: the registry name of the implementation every other one is compared
      with (default: the first one run).
    - `reference_mode`: when set, a run in another mode, or one without the reference
      implementation, also trains the reference in this mode, as `"<reference>/<mode>"`.
    - `oracle`: `(batches, config, optimizer) -> Trajectory`, an independent float64 run,
      or an iterator of its steps (`Trajectory.from_steps`'s form), so that a large run
      holds one step of it at a time.
    - `tolerances`: a [`Tolerances`][], or `(config, optimizer) -> Tolerances`.
    - `params`, `state`: the canonical names (`config -> names` or a fixed sequence);
      every implementation must produce exactly these (`None`: not checked).
    - `init`: `(implementation, config, batches, seed) -> (params, state)`, the native
      initial values (default: `implementation.init(key(seed), first input)`).
    - `evaluation`: an [`Evaluation`][] on held-out data, or `None`.
    - `analyses`: extra analyses of a finished run (e.g. a drift report).
    - `options`: the model's own command-line options.
    - `modes`: the model's modes, the first being the default (e.g. `("aligned",
      "defaults")`); `configure` reads `settings.mode`. `mode_help`: one line per mode.
    - `steps`, `batch`, `learning_rate`: defaults for the generic options.
    - `random`: the model draws random numbers: `apply` receives a per-step `key`.
    - `describe`: `(config, settings, batches) -> dict`, extra keys for the JSON's config.
    - `bench`: `(quick, rng) -> shapes` for `state-rosetta bench` (`None`: not benchmarked).
    - `bench_depth`: `(depth, quick, rng) -> shapes` for `state-rosetta bench --depth`: the
      model at `depth` layers, at a tiny and a large width (`None`: the model has no depth).
    - `docs`: the model's sections of the idioms guide (opaque to the harness).
    - `loss_reduction`: `"mean"` or `"sum"` over the batch: how data-parallel training
      combines the replicas' losses (`pmean` or `psum`), so that the gradient is the
      single-device one.
    - `cross_device`: `(config, axis_name) -> config` with the model's cross-device
      argument set (e.g. BatchNorm's `axis_name`), for `--parallel shard_map`; `None`: the
      model keeps no state that depends on the batch, so there is nothing to synchronise.
    """

    name: str
    config_type: type
    configure: Callable[[Settings], Any]
    data: Callable[[Any, Settings], Batches]
    loss: LossFn
    inputs: InputsFn | None = None
    user_data: Callable[[Any, np.ndarray, Settings], Batches] | None = None
    reference: str | None = None
    reference_mode: str | None = None
    oracle: (
        Callable[[Batches, Any, OptimizerConfig], Trajectory | Iterable[Mapping[str, Any]]] | None
    ) = None
    tolerances: Tolerances | Callable[[Any, OptimizerConfig], Tolerances] = field(
        default_factory=lambda: Tolerances(same=UNDECLARED)
    )
    params: Sequence[str] | Callable[[Any], Sequence[str]] | None = None
    state: Sequence[str] | Callable[[Any], Sequence[str]] | None = None
    init: Callable[[Implementation, Any, Batches, int], tuple[Params, State]] | None = None
    evaluation: Evaluation | None = None
    analyses: Sequence[Analysis] = ()
    options: Sequence[Option] = ()
    modes: Sequence[str] = ()
    mode_help: Mapping[str, str] = field(default_factory=dict)
    steps: int = 10
    batch: int | None = None
    learning_rate: float = 0.02
    random: bool = False
    describe: Callable[[Any, Settings, Batches], dict[str, Any]] | None = None
    bench: Callable[[bool, np.random.Generator], Sequence[BenchShape]] | None = None
    bench_depth: Callable[[int, bool, np.random.Generator], Sequence[BenchShape]] | None = None
    docs: Any = None
    loss_reduction: str = "mean"
    cross_device: Callable[[Any, str], Any] | None = None

    def __post_init__(self) -> None:
        where = f"model spec {self.name!r}" if isinstance(self.name, str) else "model spec"
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"{where}: name must be a non-empty string, got {self.name!r}")
        for attr in ("configure", "data", "loss"):
            if not callable(getattr(self, attr)):
                raise TypeError(
                    f"{where}: {attr} must be callable, got {type(getattr(self, attr)).__name__}"
                )
        if self.loss_reduction not in ("mean", "sum"):
            raise ValueError(
                f"{where}: loss_reduction must be 'mean' or 'sum', got {self.loss_reduction!r}"
            )
        for attr in (
            "inputs",
            "user_data",
            "oracle",
            "init",
            "describe",
            "bench",
            "bench_depth",
            "cross_device",
        ):
            value = getattr(self, attr)
            if value is not None and not callable(value):
                raise TypeError(f"{where}: {attr} must be callable or None")
        if not isinstance(self.tolerances, Tolerances) and not callable(self.tolerances):
            raise TypeError(f"{where}: tolerances must be a Tolerances or a callable")
        if self.reference_mode is not None and self.reference_mode not in self.modes:
            raise ValueError(f"{where}: reference_mode {self.reference_mode!r} is not a mode")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"{where}: steps must be an int >= 1, got {self.steps!r}")

    def tolerances_for(self, config: Any, optimizer: OptimizerConfig) -> Tolerances:
        """The tolerances of a run with this config and optimizer."""
        if isinstance(self.tolerances, Tolerances):
            return self.tolerances
        return self.tolerances(config, optimizer)

    def canonical_names(self, config: Any) -> tuple[list[str] | None, list[str] | None]:
        """The declared canonical (params, state) names for this config, or `None`s."""

        def names(value: Sequence[str] | Callable[[Any], Sequence[str]] | None) -> Any:
            if value is None:
                return None
            return sorted(value(config) if callable(value) else value)

        return names(self.params), names(self.state)

    def model_inputs(self, batch: Batch) -> Any:
        """What the model sees of one batch."""
        return batch if self.inputs is None else self.inputs(batch)
