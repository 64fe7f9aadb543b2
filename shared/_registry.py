"""The registry: the only place in `shared` that lists the models and the frameworks.

Entries are lazy `"module:attr"` strings, so that importing `shared` imports no framework and
no model. Adding a model: one entry in `MODELS` (its spec, its implementations).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .core import (
    Implementation,
    ImplementationFactory,
    ModelSpec,
    build,
    load_object,
    package_versions,
)


@dataclass(frozen=True)
class ModelEntry:
    """A built-in model: its spec and its implementations, as lazy `"module:attr"` strings."""

    spec: str
    implementations: Mapping[str, str] = field(default_factory=dict)


MODELS: dict[str, ModelEntry] = {
    "bias-adder": ModelEntry(
        "shared.models.bias_adder:SPEC",
        {
            "flax_linen": "impl_flax:LinenBiasAdder",
            "flax_nnx": "impl_flax:NNXBiasAdder",
            "haiku": "impl_haiku:HaikuBiasAdder",
            "equinox": "impl_equinox:EquinoxBiasAdder",
            "keras": "impl_keras:KerasBiasAdder",
            "jax": "shared.models.bias_adder:JaxBiasAdder",
        },
    ),
    "mlp-bn": ModelEntry(
        "shared.models.mlp_bn:SPEC",
        {
            "flax_linen": "impl_flax:LinenMlpBn",
            "flax_nnx": "impl_flax:NNXMlpBn",
            "haiku": "impl_haiku:HaikuMlpBn",
            "equinox": "impl_equinox:EquinoxMlpBn",
            "keras": "impl_keras:KerasMlpBn",
        },
    ),
    "mlp-dropout": ModelEntry(
        "shared.models.mlp_dropout:SPEC",
        {
            "flax_linen": "impl_flax:LinenMlpDropout",
            "flax_nnx": "impl_flax:NNXMlpDropout",
            "haiku": "impl_haiku:HaikuMlpDropout",
            "equinox": "impl_equinox:EquinoxMlpDropout",
            "keras": "impl_keras:KerasMlpDropout",
        },
    ),
    "bias-stack": ModelEntry(
        "shared.models.bias_stack:SPEC",
        {
            "flax_linen": "impl_flax:LinenBiasStack",
            "flax_nnx": "impl_flax:NNXBiasStack",
            "haiku": "impl_haiku:HaikuBiasStack",
            "equinox": "impl_equinox:EquinoxBiasStack",
            "keras": "impl_keras:KerasBiasStack",
            "jax": "shared.models.bias_stack:JaxBiasStack",
        },
    ),
    "resnet-bn": ModelEntry(
        "shared.models.resnet_bn:SPEC",
        {
            "flax_linen": "impl_flax:LinenResNetBn",
            "flax_nnx": "impl_flax:NNXResNetBn",
            "haiku": "impl_haiku:HaikuResNetBn",
            "equinox": "impl_equinox:EquinoxResNetBn",
            "keras": "impl_keras:KerasResNetBn",
        },
    ),
    "decoder-cache": ModelEntry(
        "shared.models.decoder_cache:SPEC",
        {
            "flax_linen": "impl_flax:LinenDecoderCache",
            "flax_nnx": "impl_flax:NNXDecoderCache",
            "haiku": "impl_haiku:HaikuDecoderCache",
            "equinox": "impl_equinox:EquinoxDecoderCache",
            "keras": "impl_keras:KerasDecoderCache",
        },
    ),
}
"""Every built-in model, by name; the first is `state-rosetta compare`'s default."""

DEFAULT_MODEL = next(iter(MODELS))


class Framework(NamedTuple):
    """A framework's name in reports and the prefix of its regions in the docs."""

    title: str
    region: str


FRAMEWORKS: dict[str, Framework] = {
    "flax_linen": Framework("Flax Linen", "linen"),
    "flax_nnx": Framework("Flax NNX", "nnx"),
    "haiku": Framework("Haiku", "haiku"),
    "equinox": Framework("Equinox", "equinox"),
    "keras": Framework("Keras", "keras"),
}
"""The frameworks shown side by side in the docs, by implementation name."""

DISTRIBUTIONS: dict[str, str] = {
    "jax": "jax",
    "jaxlib": "jaxlib",
    "flax": "flax",
    "haiku": "dm-haiku",
    "equinox": "equinox",
    "keras": "keras",
    "optax": "optax",
    "numpy": "numpy",
}
"""Report key -> distribution name, for the versions every run records."""


def versions() -> dict[str, str]:
    """Installed versions of the frameworks and their common dependencies."""
    return package_versions(DISTRIBUTIONS)


KERAS_PACKAGE = "impl_keras"
"""Importing it selects Keras's JAX backend, before Keras is first imported."""


def keras_first(text: str, option: str) -> None:
    """Keras reads its backend once, at its first import: a user's file that imports it
    before this project's Keras package would get TensorFlow's. When `FILE.py`'s source names
    keras, import that package first, as an `import impl_keras` atop the file would. (A
    `MODULE:ATTR`, or a file whose neighbour imports Keras, needs `KERAS_BACKEND=jax`.)

    **Raises:** `ValueError` naming `option` when Keras's own configuration refuses JAX.
    """
    module = text.rpartition(":")[0]
    if "keras" in sys.modules or not module.endswith(".py"):
        return
    try:
        source = Path(module).read_text(errors="replace")
    except OSError:
        return  # load_object names the file
    if "keras" in source:
        try:
            importlib.import_module(KERAS_PACKAGE)
        except ImportError as e:  # a keras.json with another backend or floatx
            raise ValueError(f"{option} {text}: {e}") from None


def load_user_object(text: str, option: str) -> Any:
    """`load_object`, with Keras's backend chosen first when the file uses Keras."""
    keras_first(text, option)
    return load_object(text, option=option)


def is_registered(model: object) -> bool:
    """Is `model` the name of a built-in model?"""
    return isinstance(model, str) and model in MODELS


def load_spec(model: str | ModelSpec) -> ModelSpec:
    """A model's spec: a built-in model's name, `MODULE:ATTR` or `FILE.py:ATTR`, or a spec.

    Raises `ValueError` or `TypeError` naming what was expected.
    """
    if isinstance(model, ModelSpec):
        return model
    if is_registered(model):
        spec = load_object(MODELS[model].spec, option="--model")
    elif isinstance(model, str) and ":" in model:
        spec = load_user_object(model, "--model")
    else:
        raise ValueError(
            f"--model: unknown model {model!r}; expected one of {', '.join(MODELS)} or "
            "FILE.py:ATTR (a ModelSpec)"
        )
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"--model {model}: expected a shared.ModelSpec, got {type(spec).__name__}")
    return spec


def implementations(model: str) -> dict[str, str]:
    """A built-in model's implementations (name -> `"module:attr"`); `{}` for any other."""
    entry = MODELS.get(model)
    return {} if entry is None else dict(entry.implementations)


def load_factory(spec: str) -> ImplementationFactory:
    """Load a factory from `"MODULE:ATTR"` or `"path/to/file.py:ATTR"` (see `load_object`).

    `ATTR` must be a callable that takes a config and returns an implementation.
    """
    factory = load_user_object(spec, "--impl")
    if not callable(factory):
        attr = spec.rpartition(":")[2]
        raise TypeError(f"--impl {spec}: {attr!r} must be callable (config -> implementation)")
    return factory  # type: ignore[no-any-return]


def make(name_or_spec: str, config: Any, model: str = DEFAULT_MODEL) -> Implementation:
    """Build a registered implementation by name, or a user's by `MODULE:ATTR`.

    **Arguments:**

    - `name_or_spec`: a registry name of `model` (e.g. `"haiku"`) or `MODULE:ATTR`.
    - `config`: the model's config, passed to the factory.
    - `model`: which built-in model's registry to look the name up in.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    registry = MODELS[model].implementations
    if name_or_spec in registry:
        factory = load_factory(registry[name_or_spec])
    elif ":" in name_or_spec:
        factory = load_factory(name_or_spec)
    else:
        raise ValueError(
            f"unknown implementation {name_or_spec!r}; expected one of "
            f"{', '.join(registry)} or MODULE:ATTR (model {model})"
        )
    return build(name_or_spec, factory, config, load_spec(model))
