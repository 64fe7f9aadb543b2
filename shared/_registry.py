"""The registry of implementations: the only place in `shared` that names the frameworks.

Entries are lazy `"module:attr"` strings, so that importing `shared` imports no framework.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any

from ._protocol import Implementation, ImplementationFactory

IMPLEMENTATIONS: dict[str, str] = {
    "flax_linen": "impl_flax:LinenBiasAdder",
    "flax_nnx": "impl_flax:NNXBiasAdder",
    "haiku": "impl_haiku:HaikuBiasAdder",
    "equinox": "impl_equinox:EquinoxBiasAdder",
    "jax": "shared._reference:JaxBiasAdder",
}
"""Built-in implementations of the bias adder, by registry name."""

REFERENCE = "jax"
"""The implementation every other one is compared with by default."""

MLP_BN_IMPLEMENTATIONS: dict[str, str] = {
    "flax_linen": "impl_flax:LinenMlpBn",
    "flax_nnx": "impl_flax:NNXMlpBn",
    "haiku": "impl_haiku:HaikuMlpBn",
    "equinox": "impl_equinox:EquinoxMlpBn",
}
"""Built-in implementations of the MLP with BatchNorm (`--model mlp-bn`), by registry name."""

MLP_BN_REFERENCE = "flax_linen"
"""The MLP's reference: Flax's BatchNorm defaults are the aligned settings' starting point
(its fast variance formula is also Haiku's), and NNX matches it bitwise."""

MODELS: dict[str, dict[str, str]] = {
    "bias-adder": IMPLEMENTATIONS,
    "mlp-bn": MLP_BN_IMPLEMENTATIONS,
}
"""Registry of every model: model name -> its implementations."""

VERSIONS: dict[str, str] = {
    "jax": "jax",
    "jaxlib": "jaxlib",
    "flax": "flax",
    "haiku": "dm-haiku",
    "equinox": "equinox",
    "optax": "optax",
    "numpy": "numpy",
}
"""Report key -> distribution name, for the versions every run records."""


def versions() -> dict[str, str]:
    """Installed versions of the frameworks and their common dependencies."""
    out = {}
    for key, dist in VERSIONS.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = "not installed"
    return out


def load_factory(spec: str) -> ImplementationFactory:
    """Load `ATTR` from `"MODULE:ATTR"` or `"path/to/file.py:ATTR"`.

    `ATTR` must be a callable that takes a config and returns an [`Implementation`][].
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--impl: expected MODULE:ATTR or FILE.py:ATTR, got {spec!r}")
    try:
        if module_name.endswith(".py"):
            module = _import_file(Path(module_name))
        else:
            module = importlib.import_module(module_name)
    except (ImportError, OSError) as e:
        raise ValueError(f"--impl {spec}: cannot import {module_name!r}: {e}") from e
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"--impl {spec}: module {module_name!r} has no {attr!r}") from None
    if not callable(factory):
        raise TypeError(f"--impl {spec}: {attr!r} must be callable (config -> implementation)")
    return factory  # type: ignore[no-any-return]


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise OSError(f"no such file: {path}")
    name = f"_state_rosetta_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make(name_or_spec: str, config: Any, model: str = "bias-adder") -> Implementation:
    """Build a registered implementation by name, or a user's by `MODULE:ATTR`.

    **Arguments:**

    - `name_or_spec`: a registry name of `model` (e.g. `"haiku"`) or `MODULE:ATTR`.
    - `config`: the model's config, passed to the factory.
    - `model`: which model's registry to look the name up in (see [`MODELS`][]).
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    registry = MODELS[model]
    if name_or_spec in registry:
        factory = load_factory(registry[name_or_spec])
    elif ":" in name_or_spec:
        factory = load_factory(name_or_spec)
    else:
        raise ValueError(
            f"unknown implementation {name_or_spec!r}; expected one of "
            f"{', '.join(registry)} or MODULE:ATTR (model {model})"
        )
    return build(factory, config, name_or_spec)


def build(factory: ImplementationFactory, config: Any, label: str) -> Implementation:
    """Call `factory(config)` and check that the result follows the protocol."""
    impl = factory(config)
    missing = [
        m
        for m in ("name", "model", "init", "apply", "to_canonical", "from_canonical")
        if not hasattr(impl, m)
    ]
    if missing:
        raise TypeError(
            f"implementation {label!r} does not follow the protocol: missing {', '.join(missing)}"
        )
    return impl
