"""The bias adder's sections of the idioms guide, cut from each framework's file."""

from __future__ import annotations

from shared.docs import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen.py",
    "flax_nnx": "impl_flax/_nnx.py",
    "haiku": "impl_haiku/_bias_adder.py",
    "equinox": "impl_equinox/_bias_adder.py",
}
"""Framework -> the file that holds its bias adder."""

CONCEPTS = (
    Concept(
        "declare-param",
        "Declare a parameter",
        "Linen and Haiku declare the parameter lazily inside the call (its shape comes from the "
        "input, `init` creates it); NNX and Equinox create it eagerly in `__init__`, so the "
        "feature size is a constructor argument.",
        FILES,
    ),
    Concept(
        "declare-state",
        "Declare state",
        "Linen puts state in a named collection (`batch_stats`) and Haiku in the separate state "
        "dict of `hk.get_state`; NNX tags it with a Variable type (`nnx.BatchStat`) on the "
        "module; Equinox keeps only an `eqx.nn.StateIndex` on the module, the value lives in a "
        "separate `eqx.nn.State`. Linen asks `has_variable` first, to tell `init` from training.",
        FILES,
    ),
    Concept(
        "init",
        "Initialise",
        "Linen and Haiku run the forward pass once under `init`, so the model must not update "
        "its state then (the `has_variable` guard, `hk.running_init()`); NNX and Equinox build "
        "the values in the constructor (`eqx.nn.make_with_state` returns the model and its "
        "state) and never call the model to initialise it.",
        FILES,
    ),
    Concept(
        "split",
        "Split params from state",
        "Linen pops the `params` collection off the variables dict; NNX splits the module by "
        "Variable type into a graphdef and two States; Haiku's `transform_with_state` makes "
        "`init` return params and state apart; Equinox's state is apart already, so its split "
        "is between the arrays to train (`eqx.filter(model, eqx.is_inexact_array)`) and the "
        "rest.",
        FILES,
    ),
    Concept(
        "apply-update",
        "Apply with a state update",
        "Linen returns the new state only for the collections named in `mutable`; Haiku's "
        "`apply` always returns `(out, new_state)`; Equinox threads the state in and out by "
        "hand; NNX mutates `model.mean` in place and `nnx.value_and_grad` carries the update "
        "out of the trace.",
        FILES,
    ),
    Concept(
        "eval",
        "Eval without an update",
        "Linen takes `train=False` and no `mutable`; Haiku takes `is_training=False`; NNX "
        "switches a module attribute with `model.eval()` / `model.train()`; Equinox's "
        "`eqx.nn.inference_mode` returns a copy of the model with `inference=True`.",
        FILES,
    ),
    Concept(
        "train-step",
        "The optimizer step",
        "Linen's `TrainState.apply_gradients` and NNX's `nnx.Optimizer` keep the optax state "
        "for you; Haiku and Equinox call `tx.update` and apply the updates by hand, and "
        "Equinox filters the model down to its arrays (`eqx.filter_jit`, `eqx.filter`).",
        FILES,
    ),
    Concept(
        "merge",
        "Merge back",
        "Only NNX needs a real merge (`nnx.merge(graphdef, params, state, copy=True)`); Linen "
        'rebuilds the variables dict `{"params": params, **state}` at every `apply`; Haiku '
        "passes params and state side by side, so its adapter only rebuilds the nested dicts; "
        "Equinox `eqx.combine`s the trained arrays with the static rest of the module.",
        FILES,
    ),
)


GOTCHAS = (
    (
        "The Flax page's `keepdims=True`",
        "The Flax page updates the state with `jnp.mean(x, axis=0, keepdims=True)`, so "
        "`mean` turns from (D,) into (1, D) after the first training call. Plain JAX, Linen "
        "and Haiku accept it and trace the jitted step twice (a `lax.scan` raises "
        "`TypeError`); NNX and Equinox raise `ValueError`. This project keeps "
        "`keepdims=False`; `--keepdims` brings the Flax page's back. See "
        "`tests/bias_adder/test_keepdims.py`.",
    ),
    (
        "Haiku: `init` runs the model",
        "`forward.init(key, x, is_training=True)` runs the forward pass in training mode, so "
        "that every state the training path reads is created; the update is guarded with "
        "`hk.running_init()`, so that `init` returns the zero state and not one already moved "
        "by the init batch (`impl_haiku/_bias_adder.py`, "
        "`tests/bias_adder/test_model.py::test_init_gives_zero_bias_and_zero_mean_without_update`).",
    ),
    (
        "Equinox: float fields must be static",
        "`momentum: float = eqx.field(static=True)`. A plain float field is a pytree leaf: "
        "under `jax.jit` it is traced, `1.0 - momentum` is then computed in float32 "
        "(0.100000024, not 0.1 rounded once from the Python float) and bitwise agreement is "
        "lost from the first step. `tests/bias_adder/plugins/wrong_momentum.py` keeps its "
        "momentum a Python float for the same reason (the traced-momentum trap).",
    ),
    (
        "NNX: merge with `copy=True` inside transforms",
        "NNX 0.12 merges a State's Variables by reference: without `copy=True`, a trace or the "
        "native loop mutates the caller's params and state (`impl_flax/_nnx.py`, "
        "`NNXBiasAdder._merge`).",
    ),
    (
        "Eval mode is easy to miss",
        "Linen: `apply(..., train=False)` without `mutable`; NNX: `model.eval()` (the mode is "
        "an attribute of the module and stays until `model.train()`); Equinox: "
        "`eqx.nn.inference_mode(model)`. Each must leave the state unchanged and return the "
        "stored mean plus the bias: "
        "`tests/bias_adder/test_model.py::test_eval_leaves_state_unchanged_and_returns_stored_mean_plus_bias`.",
    ),
)

DOCS = ModelDocs(CONCEPTS, GOTCHAS)
