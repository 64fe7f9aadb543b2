"""`shared.wrap`: a framework's own model object behind the harness protocol.

The object's type says its framework (the packages its classes come from); that framework's
package wraps it (`impl_haiku.wrap`, ...), imported only then, so that the core stays
framework-free and a run imports only the frameworks it uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

WRAPPERS = {
    "haiku": "impl_haiku._wrap",
    "flax.linen": "impl_flax._linen._wrap",
    "flax.nnx": "impl_flax._nnx._wrap",
    "equinox": "impl_equinox._wrap",
    "keras": "impl_keras._wrap",  # importing impl_keras selects the JAX backend first
}
"""Where a class's module starts -> the package whose `wrap` takes its objects."""


class NativeTraining:
    """What a wrapped model's native loop trains with: a model from a user's file has no loss
    of its own, so `check_port` gives it the loss and the input picker it was given."""

    name = "model"
    _loss: tuple[Callable[[Any, Any], Any], Callable[[Any], Any]] | None = None

    def use_loss(self, loss: Callable[[Any, Any], Any], inputs: Callable[[Any], Any]) -> None:
        """Train the native loop on `loss(output, batch)`, the model seeing `inputs(batch)`."""
        self._loss = (loss, inputs)

    def training(self) -> tuple[Callable[[Any, Any], Any], Callable[[Any], Any]]:
        """The loss and the input picker; `ValueError` naming the model if none was given."""
        if self._loss is None:
            raise ValueError(
                f"{self.name}: native_loop needs the loss; call use_loss(loss, inputs) first "
                "(check_port does)"
            )
        return self._loss


def framework_of(obj: Any) -> str | None:
    """The framework of a model object, from the modules of its type and its bases."""
    probe = obj[0] if type(obj) is tuple and obj else obj  # (eqx module, eqx State)
    for cls in type(probe).__mro__:
        module = cls.__module__ or ""
        for prefix in WRAPPERS:
            if module == prefix or module.startswith(prefix + "."):
                return prefix
    return None


def wrap(obj: Any, *, label: str = "model", **options: Any) -> Any:
    """`obj` behind the protocol: an `hk.Transformed` or `hk.TransformedWithState`, a
    Linen `nn.Module`, an `nnx.Module`, an Equinox module (or `(module, eqx.nn.State)`),
    a Keras model or layer. An object that already follows the protocol is returned as is.

    **Arguments:**

    - `obj`: the model.
    - `label`: how errors name it (`"reference"`, `"port"`).
    - `options`: the framework's keywords, e.g. `train_arg="is_training"` for a Haiku
      function whose train/eval switch is an argument (see each package's `wrap`).

    **Raises:** `TypeError` naming `label`, the object's type and the objects it takes.
    """
    if getattr(obj, "wrapped_by_rosetta", False):
        if options:
            raise TypeError(f"{label}: already wrapped; pass {sorted(options)} to wrap() once")
        return obj
    framework = framework_of(obj)
    if framework is None:
        raise TypeError(
            f"{label}: cannot tell the framework of a {type(obj).__module__}."
            f"{type(obj).__qualname__}; expected an hk.Transformed(WithState), a Linen "
            "nn.Module, an nnx.Module, an Equinox module or a Keras model"
        )
    package = importlib.import_module(WRAPPERS[framework])
    return package.wrap(obj, label=label, **options)
