"""The bias adder's sections of the idioms guide, cut from each framework's file."""

from __future__ import annotations

from shared.docs import Concept, ModelDocs

FILES = {
    "flax_linen": "impl_flax/_linen/_bias_adder.py",
    "flax_nnx": "impl_flax/_nnx/_bias_adder.py",
    "haiku": "impl_haiku/_bias_adder.py",
    "equinox": "impl_equinox/_bias_adder.py",
    "keras": "impl_keras/_bias_adder.py",
}
"""Framework -> the file that holds its bias adder."""

ADAPTERS = {
    "flax_linen": "impl_flax/_linen/_adapter.py",
    "flax_nnx": "impl_flax/_nnx/_adapter.py",
    "haiku": "impl_haiku/_adapter.py",
    "equinox": "impl_equinox/_adapter.py",
    "keras": "impl_keras/_adapter.py",
}
"""Framework -> its adapter base, which every model of that framework shares (its init, split
and merge, and its apply with the train/eval switch)."""

INIT = {**FILES, "flax_linen": ADAPTERS["flax_linen"], "haiku": ADAPTERS["haiku"]}
"""Where each framework's init is: the model's own constructor call, or the adapter's `init`
for the frameworks that initialise by running the model."""

SPLIT = {**ADAPTERS, "haiku": FILES["haiku"]}
"""Where each framework splits params from state, and merges them back: the adapter, except
Haiku's, whose `hk.transform_with_state` (in the model's file) returns them apart."""

APPLY_UPDATE = {**FILES, "keras": ADAPTERS["keras"]}
"""Where each framework's training call returns its state update: the model's own train
step, or Keras's `stateless_call` in its adapter."""

EVAL = ADAPTERS
"""Where each framework calls the model without a state update: its adapter's `apply`."""

NATIVE = {
    "flax_linen": "impl_flax/_linen/_native.py",
    "flax_nnx": "impl_flax/_nnx/_native.py",
    "haiku": "impl_haiku/_native.py",
    "equinox": "impl_equinox/_native.py",
    "keras": "impl_keras/_native.py",
}
"""Framework -> its native training loop, shared by every model (the optimizer's setup)."""

CONCEPTS = (
    Concept(
        "declare-param",
        "Declare a parameter",
        "Linen and Haiku declare the parameter lazily inside the call (its shape comes from the "
        "input, `init` creates it); NNX and Equinox create it eagerly in `__init__`, so the "
        "feature size is a constructor argument. Keras creates it in `build(input_shape)` with "
        "`add_weight`, called once the input's shape is known.",
        FILES,
        topic="parameters-and-state",
    ),
    Concept(
        "declare-state",
        "Declare state",
        "Linen puts state in a named collection (`batch_stats`) and Haiku in the separate state "
        "dict of `hk.get_state`; NNX tags it with a Variable type (`nnx.BatchStat`) on the "
        "module; Equinox keeps only an `eqx.nn.StateIndex` on the module, the value lives in a "
        "separate `eqx.nn.State`. Linen asks `has_variable` first, to tell `init` from training. "
        "Keras adds a weight with `trainable=False`: a `keras.Variable` object on the layer.",
        FILES,
        topic="parameters-and-state",
    ),
    Concept(
        "write-state",
        "Write state in the forward pass",
        "The model's call, whole, with the line that writes the running mean. Linen assigns "
        "`mean.value` of the variable it declared (kept only when the caller marks "
        "`batch_stats` mutable); NNX writes into the `nnx.BatchStat` in place, "
        "`self.mean[...] = ...`, and the update lives on the module; Haiku calls "
        "`hk.set_state`, which `apply` returns as the new state; Equinox returns a new state, "
        "`state.set(self.mean_index, ...)`, next to the output, as JAX's functional style "
        "would; Keras calls `self.mean.assign(...)` on its variable (under `stateless_call` "
        "the assignment comes back as the new non-trainable values). Each guards the update: "
        "Linen's `has_variable` and Haiku's `hk.running_init()` keep `init` from updating, and "
        "NNX, Equinox and Keras read a training flag.",
        FILES,
        topic="parameters-and-state",
    ),
    Concept(
        "init",
        "Initialise",
        "Linen and Haiku run the forward pass once under `init`, so the model must not update "
        "its state then (the `has_variable` guard, `hk.running_init()`); NNX and Equinox build "
        "the values in the constructor (`eqx.nn.make_with_state` returns the model and its "
        "state) and never call the model to initialise it; Keras's `build` creates the "
        "variables without a call (a subclassed `keras.Model` builds its layers when first "
        "called).",
        INIT,
        topic="init",
    ),
    Concept(
        "split",
        "Split params from state, and merge them back",
        "Linen pops the `params` collection off the variables dict, and `apply` takes them "
        'back together as `{"params": params, **state}`; Haiku\'s `transform_with_state` makes '
        "`init` return params and state apart, and `apply` takes them side by side, so neither "
        "has anything to merge. NNX splits the module by Variable type into a graphdef and two "
        "`State`s, and `nnx.merge` rebuilds a module from them. Equinox's state is apart "
        "already, so its split is between the arrays to train and the rest of the module "
        "(`eqx.partition`), put back together by `eqx.combine`. Keras's variables are "
        "objects: `stateless_call` takes their values as two lists, in `trainable_variables` "
        "and `non_trainable_variables` order, and `assign` writes values back into them.",
        SPLIT,
        extra={"flax_nnx": ("merge",), "equinox": ("merge",), "keras": ("merge",)},
        topic="parameters-and-state",
    ),
    Concept(
        "apply-update",
        "Apply with a state update",
        "Linen returns the new state only for the collections named in `mutable`; Haiku's "
        "`apply` always returns `(out, new_state)`; Equinox threads the state in and out by "
        "hand; NNX mutates `model.mean` in place and `nnx.value_and_grad` carries the update "
        "out of the trace. Keras's `stateless_call(trainable, non_trainable, x, "
        "training=True)` returns the new non-trainable values; `training` must be passed.",
        APPLY_UPDATE,
        topic="train-and-eval",
    ),
    Concept(
        "eval",
        "Eval without an update",
        "Linen takes `train=False` and no `mutable`; Haiku takes `is_training=False`; NNX "
        "switches a module attribute with `model.eval()` / `model.train()`; Equinox's "
        "`eqx.nn.inference_mode` returns a copy of the model with `inference=True`; Keras "
        "takes `training=False`.",
        EVAL,
        topic="train-and-eval",
    ),
    Concept(
        "optimizer-setup",
        "Set up the optimizer",
        "Linen keeps the optax state in a `TrainState`, subclassed to carry the `batch_stats` "
        "collection next to the params; NNX's `nnx.Optimizer(model, tx, wrt=nnx.Param)` holds "
        "it beside the model and updates only the `nnx.Param`s, never the `BatchStat`s; "
        "Haiku and Equinox keep `tx.init(...)`'s state themselves, Equinox on the model's "
        "arrays only (`eqx.filter(model, eqx.is_array)`); Keras's `compile` takes one of its "
        "own optimizers, which keeps its moments in Keras variables.",
        NATIVE,
        extra={"flax_linen": ("optimizer-create",)},
        topic="optimizer",
    ),
    Concept(
        "train-step",
        "The optimizer step",
        "Linen's `TrainState.apply_gradients` and NNX's `nnx.Optimizer` keep the optax state "
        "for you; Haiku and Equinox call `tx.update` and apply the updates by hand, and "
        "Equinox filters the model down to its arrays (`eqx.filter_jit`, `eqx.filter`). "
        "Keras's own loop is `compile(optimizer=...)` and `train_on_batch`, with Keras's "
        "optimizer; a loss on the input itself goes in a `compute_loss` override.",
        FILES,
        topic="optimizer",
    ),
)

KERAS_GOTCHAS = (
    (
        "Keras: the backend is chosen at the first `import keras`",
        "Without `KERAS_BACKEND=jax` set before Keras is first imported, `import keras` fails "
        "asking for TensorFlow, and writes `~/.keras/keras.json` (`KERAS_HOME` moves it). Fix: "
        "import `impl_keras` first, which sets the variable and then checks "
        '`keras.backend.backend() == "jax"` and `keras.config.floatx() == "float32"`; '
        "without a `keras.json` of yours it also gives Keras a `KERAS_HOME` under the "
        "temporary directory, so nothing is written under `$HOME` "
        "(`tests/keras/test_keras_traps.py`).",
    ),
    (
        "Keras: never call a layer inside `jax.jit`",
        "In training, `layer(x, training=True)` under `jax.jit` leaves a leaked tracer in the "
        "variable; in eval, the variables' values are baked into the compiled function as "
        "constants and later assignments are silently ignored. Fix: "
        "`layer.stateless_call(trainable_values, non_trainable_values, x, training=...)`, "
        "values in and out (`impl_keras/_adapter.py`).",
    ),
    (
        "Keras: `stateless_call` skips what `layer(x)` does for you",
        "It does not default `training` (without `training=True` nothing is updated and "
        "nothing complains: keras #20378), and it does not cast the inputs to the compute "
        "dtype (a float16 input gives a float16 mean). Fix: pass `training=True` and cast "
        "your inputs.",
    ),
    (
        "Keras: `Variable.assign` checks shapes and casts dtypes",
        "The Flax page's `keepdims=True` raises `ValueError` (a (1, D) value for a (D,) "
        "variable); a float16 or float64 value is silently cast to the variable's float32. "
        "And `assign` keeps the array itself, which Keras's jitted `train_on_batch` then "
        "donates: assign a copy (`jnp.copy`) of any array you still need.",
    ),
    (
        "Keras: keep hyperparameters Python floats",
        "A momentum held as a JAX array is traced, `1.0 - momentum` becomes 0.100000024 and "
        "bitwise agreement is lost from the first step, as with an Equinox field that is not "
        "static (`test_a_traced_momentum_breaks_bitwise_equality`).",
    ),
    (
        "Keras: `train_on_batch` returns its loss tracker's value",
        "A `keras.metrics.Mean` weighted by the batch size: `(loss * B) / B` in float32, 1 ULP "
        "off the loss unless B is a power of 2. The built-in "
        "`SparseCategoricalCrossentropy` also rounds differently from optax's cross-entropy "
        "(a few ULP per step); the MLPs override `compute_loss` with the loss every "
        "framework trains on.",
    ),
    (
        "Keras: its optimizers are not optax's",
        "SGD is the same to the bit. SGD with momentum keeps `m = mu*m - lr*g` (optax: "
        "`v = mu*v + g`): bounded rounding differences. Adam adds epsilon to `sqrt(v)` before "
        "the bias correction (optax: to `sqrt(v_hat)`), 32x optax's epsilon at step 1: "
        "parameters with tiny gradients move differently. Keras's defaults differ too: Adam "
        "`epsilon=1e-7` (optax 1e-8), AdamW `weight_decay=0.004` (optax 1e-4) "
        "(`tests/keras/test_keras_optimizers.py`).",
    ),
    (
        "Keras: `BatchNormalization` defaults, and no cross-device statistics on JAX",
        "Momentum 0.99 and epsilon 1e-3 (Flax: 1e-5), a two-pass variance, output "
        "`x * inv + (beta - mean * inv)`: aligned with Flax's settings its outputs still "
        "differ by up to 7e-7. `synchronized=True` is refused on the JAX backend "
        "(`docs/batchnorm.md`).",
    ),
    (
        "Keras: dropout's randomness is a variable",
        "`keras.layers.Dropout` owns a `SeedGenerator` whose (2,) uint32 seed is a "
        "non-trainable variable, used as the raw key and advanced by [0, 1] per call: under "
        "`stateless_call` it must be threaded like BatchNorm's statistics, or every step "
        "draws the same mask. Unseeded, a layer draws its seed at random when built.",
    ),
)


GOTCHAS = (
    (
        "The Flax page's `keepdims=True`",
        "The Flax page updates the state with `jnp.mean(x, axis=0, keepdims=True)`, so "
        "`mean` turns from (D,) into (1, D) after the first training call. Plain JAX, Linen "
        "and Haiku accept it and trace the jitted step twice (a `lax.scan` raises "
        "`TypeError`); NNX, Equinox and Keras (`Variable.assign` checks the shape) raise "
        "`ValueError`. This project keeps "
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
        "native loop mutates the caller's params and state (`impl_flax/_nnx/_adapter.py`, "
        "`NNXAdapter.merge`).",
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

DOCS = ModelDocs(CONCEPTS, GOTCHAS + KERAS_GOTCHAS)
