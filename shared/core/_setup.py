"""A run's pieces before training: options resolved, implementations built and checked,
data and keys made."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._faults import fault_hooks
from ._harness import run_loop, unstack
from ._keys import step_keys
from ._optim import OptimizerConfig
from ._options import RunOptions
from ._parallel import Parallel, run_parallel
from ._plugin import contained  # the user's code may call sys.exit()
from ._protocol import REQUIRED, Implementation, ImplementationFactory, Params, State
from ._spec import Batches, ModelSpec, Settings
from ._trajectory import Trajectory


def build(
    label: str, factory: ImplementationFactory, config: Any, spec: ModelSpec
) -> Implementation:
    """Call `factory(config)` and check that the result follows the protocol for `spec`.

    Raises `TypeError` or `ValueError` naming the implementation (`label`) and what is wrong.
    """
    if not callable(factory):
        raise TypeError(
            f"implementation {label}: expected a callable (config -> implementation), got "
            f"{type(factory).__name__}"
        )
    try:
        with contained(f"implementation {label}: its factory"):
            impl = factory(config)
    except Exception as e:
        raise ValueError(
            f"implementation {label}: building it from the config raised {describe_error(e)[0]}; "
            "expected a factory that takes the model's config"
        ) from e
    missing = [m for m in REQUIRED if not hasattr(impl, m)]
    if missing:
        raise TypeError(
            f"implementation {label} does not follow the protocol: missing {', '.join(missing)}"
        )
    if impl.model != spec.name:
        raise ValueError(
            f"implementation {label} ({impl.name}) declares model {impl.model!r}, but this run "
            f"trains {spec.name!r}; expected model = {spec.name!r}"
        )
    return impl


def settings_for(spec: ModelSpec, options: RunOptions) -> Settings:
    """The model's settings for these options: its mode checked, its option defaults filled."""
    modes = tuple(spec.modes)
    mode = options.mode if options.mode is not None else (modes[0] if modes else "")
    if mode != "" and mode not in modes:
        expected = ", ".join(modes) if modes else "none (this model has no modes)"
        raise ValueError(f"{spec.name}: unknown mode {mode!r}; expected one of {expected}")
    known = {o.key: o.default for o in spec.options}
    unknown = sorted(set(options.values) - set(known))
    if unknown:
        raise ValueError(
            f"{spec.name}: unknown option {unknown[0]!r}; the model's options are "
            f"{', '.join(known) or 'none'}"
        )
    if options.data is not None and spec.user_data is None:
        raise ValueError(f"--data: model {spec.name} takes no user data (it brings its own)")
    return Settings(
        mode=mode,
        steps=options.steps,
        batch=options.batch,
        seed=options.seed,
        optimizer=options.optimizer,
        data=options.data,
        values={**known, **options.values},
    )


class RunSetup:
    """One run's shared pieces: the spec, settings, config, optimizer, data and keys.

    Build one with [`setup_run`][]; `initial(impl, config)` gives an implementation's
    initial native values, `train(impl, loop)` trains it.
    """

    def __init__(
        self, spec: ModelSpec, options: RunOptions, settings: Settings, config: Any
    ) -> None:
        self.spec = spec
        self.options = options
        self.settings = settings
        self.config = config
        lr = spec.learning_rate if options.lr is None else options.lr
        self.optimizer = OptimizerConfig(options.optimizer, learning_rate=lr)
        if options.data is not None:
            assert spec.user_data is not None
            self.batches = _called(
                "user_data", spec, spec.user_data, config, np.asarray(options.data), settings
            )
        else:
            self.batches = _called("data", spec, spec.data, config, settings)
        self.batches = fault_hooks().batches(self.batches)  # a test's may change them
        self.steps = len(unstack(self.batches))
        self.keys = step_keys(options.seed, self.steps) if spec.random else None
        self.held_out = None if spec.evaluation is None else spec.evaluation.data(config, settings)

    def initial(self, impl: Implementation, config: Any) -> tuple[Params, State]:
        if self.spec.init is not None:
            return self.spec.init(impl, config, self.batches, self.options.seed)
        first = self.spec.model_inputs(unstack(self.batches)[0])
        return impl.init(jax.random.key(self.options.seed), first)

    def train(
        self,
        impl: Implementation,
        loop: str,
        config: Any | None = None,
        seed: int | None = None,
        batches: Batches | None = None,
    ) -> Trajectory:
        params, state = self.initial(impl, self.config if config is None else config)
        batches = self.batches if batches is None else batches
        keys = self.keys
        if keys is not None and (seed is not None or batches is not self.batches):
            seed = self.options.seed if seed is None else seed
            keys = step_keys(seed, len(unstack(batches)))
        return run_loop(
            loop,
            impl,
            params,
            state,
            self.optimizer.make(),
            batches,
            self.spec.loss,
            self.spec.inputs,
            keys,
        )

    def train_parallel(
        self, impl: Implementation, loop: str, config: Any, parallel: Parallel, mesh: Any
    ) -> Any:
        params, state = self.initial(impl, config)
        return run_parallel(
            loop,
            impl,
            params,
            state,
            self.optimizer.make(),
            self.batches,
            self.spec.loss,
            parallel=parallel,
            mesh=mesh,
            inputs=self.spec.inputs,
            keys=self.keys,
            reduction=self.spec.loss_reduction,
        )

    def evaluate(
        self, impl: Implementation, trajectory: Trajectory
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Held-out outputs and metrics after a recorded trajectory's last step."""
        final = trajectory.final()
        params = {k[7:]: v for k, v in final.items() if k.startswith("params.")}
        state = {k[6:]: v for k, v in final.items() if k.startswith("state.")}
        return self.evaluate_values(impl, params, state)

    def evaluate_values(
        self, impl: Implementation, params: Mapping[str, Any], state: Mapping[str, Any]
    ) -> tuple[np.ndarray, dict[str, float]]:
        """Held-out outputs and metrics of canonical params and state (loaded with
        `from_canonical`, the model called with `train=False`)."""
        evaluation = self.spec.evaluation
        assert evaluation is not None
        native_params, native_state = impl.from_canonical(
            {k: jnp.asarray(v) for k, v in params.items()},
            {k: jnp.asarray(v) for k, v in state.items()},
        )
        x = self.spec.model_inputs(self.held_out)
        # Outputs may be any pytree (a dict of heads, say): each leaf to NumPy, as it is.
        outputs = jax.tree.map(
            np.asarray,
            jax.jit(lambda p, s, x: impl.apply(p, s, x, train=False)[0])(
                native_params, native_state, x
            ),
        )
        return outputs, evaluation.metrics(outputs, self.held_out)


def _called(what: str, spec: ModelSpec, fn: Any, *args: Any) -> Any:
    """`fn(*args)`, a spec's callable; what it raises becomes a `ValueError` naming it (a bad
    spec is bad input: exit 2 with one line, not a traceback)."""
    try:
        with contained(f"model spec {spec.name!r}: its {what}"):
            return fn(*args)
    except Exception as e:
        raise ValueError(
            f"model spec {spec.name!r}: its {what} callable raised {describe_error(e)[0]}"
        ) from e


def describe_error(e: BaseException) -> tuple[str, str]:
    """(first line, whole message) of an exception, each led by its type."""
    text = str(e)
    first_line = next(iter(text.splitlines()), "")
    short = f"{type(e).__name__}: {first_line}" if first_line else type(e).__name__
    return short, f"{type(e).__name__}: {text}" if text else type(e).__name__


def preflight(
    spec: ModelSpec, run: RunSetup, impls: Sequence[tuple[str, Implementation]]
) -> dict[str, tuple[int, ...]]:
    """Check every implementation's init and canonical names and shapes, before training.

    A bad implementation is a bad argument (exit 2), not a divergence: it raises
    `ValueError` naming the implementation, the leaf and what was expected.
    **Returns:** the first implementation's canonical shapes (`"params.NAME"`,
    `"state.NAME"`).
    """
    declared = spec.canonical_names(run.config)
    shapes: dict[str, tuple[str, dict[str, tuple[int, ...]]]] = {}
    for label, impl in impls:
        try:
            with contained(f"implementation {label}: its init"):
                params, state = run.initial(impl, run.config)
                cparams, cstate = impl.to_canonical(params, state)
        except Exception as e:
            raise ValueError(
                f"implementation {label} ({impl.name}): init or to_canonical raised "
                f"{describe_error(e)[0]}"
            ) from e
        for group, values, names in (
            ("params", cparams, declared[0]),
            ("state", cstate, declared[1]),
        ):
            if not isinstance(values, Mapping):
                raise TypeError(
                    f"implementation {label} ({impl.name}): to_canonical must return two "
                    f"dicts (params, state), got {type(values).__name__} for {group}"
                )
            if names is not None and sorted(values) != names:
                missing = sorted(set(names) - set(values))
                extra = sorted(set(values) - set(names))
                what = f"missing {missing}" if missing else f"unexpected {extra}"
                raise ValueError(
                    f"implementation {label} ({impl.name}): canonical {group} {what}; model "
                    f"{spec.name} expects {names}; the implementation gives {sorted(values)}"
                )
            got = {k: tuple(np.shape(v)) for k, v in values.items()}
            if group in shapes:
                other, expected = shapes[group]
                for k, shape in got.items():
                    if k in expected and expected[k] != shape:
                        raise ValueError(
                            f"implementation {label} ({impl.name}): canonical {group}.{k} has "
                            f"shape {shape}; {other} gives {expected[k]}"
                        )
            else:
                shapes[group] = (f"{impl.name}", got)
    return {f"{g}.{k}": shape for g, (_, got) in shapes.items() for k, shape in got.items()}


def setup_run(spec: ModelSpec, options: RunOptions | None = None) -> RunSetup:
    """The settings, config, optimizer, data and keys of a run of `spec` with `options`."""
    options = RunOptions() if options is None else options
    settings = settings_for(spec, options)
    return RunSetup(spec, options, settings, configure(spec, settings))


def configure(spec: ModelSpec, settings: Settings) -> Any:
    """`spec.configure(settings)`; a `ValueError` it raises (a bad option) stays as it is,
    anything else is named as the spec's `configure` raising."""
    try:
        with contained(f"model spec {spec.name!r}: its configure"):
            return spec.configure(settings)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(
            f"model spec {spec.name!r}: its configure callable raised {describe_error(e)[0]}"
        ) from e
