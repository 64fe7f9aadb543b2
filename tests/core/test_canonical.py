"""Canonical names derived from each framework's own tree paths, plus a rename map.

Every expected name below is written by hand from the framework's documented layout (Linen's
`Dense_0`, NNX's attribute names, Haiku's `module/~/submodule`, Equinox's attribute paths),
and every expected value is the native leaf itself, reached by hand.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import equinox as eqx
import flax.linen as nn
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.core import FrozenDict

import shared
from impl_equinox import (
    equinox_canonical,
    equinox_from_canonical,
    equinox_state_canonical,
    equinox_state_from_canonical,
)
from impl_flax import linen_canonical, linen_from_canonical, nnx_canonical, nnx_from_canonical
from impl_haiku import haiku_canonical, haiku_from_canonical

X = jnp.arange(15, dtype=jnp.float32).reshape(5, 3) / 7.0  # batch 5, features 3


def _bitwise(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def assert_same(got: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert _bitwise(got[name], expected[name]), name


def shifted(values: Mapping[str, Any]) -> dict[str, Any]:
    """New values of the same shapes and dtypes, different from the old ones everywhere."""
    out = {}
    for i, (name, v) in enumerate(sorted(values.items())):
        v = np.asarray(v)
        if v.dtype == np.bool_:
            out[name] = ~v
        else:
            out[name] = (v + (i + 1)).astype(v.dtype)
    return out


# -- the core: any pytree -------------------------------------------------------------------


class Pair(NamedTuple):
    first: Any
    second: Any


class Opaque:
    """A pytree registered without keys: its children get `FlattenedIndexKey`s."""

    def __init__(self, a: Any, b: Any):
        self.a, self.b = a, b


jax.tree_util.register_pytree_node(
    Opaque, lambda o: ((o.a, o.b), None), lambda _, children: Opaque(*children)
)


def test_canonical_from_paths_names_dict_keys_attributes_and_indices():
    a, b, c, d, e = (np.full((i + 1,), i, np.float32) for i in range(5))
    tree = {"bn": {"mean": a}, "layers": [Pair(b, None), (c,)], "opaque": Opaque(d, e)}
    got = shared.canonical_from_paths(tree)
    assert list(got) == ["bn.mean", "layers.0.first", "layers.1.0", "opaque.0", "opaque.1"]
    assert got["bn.mean"] is a and got["layers.0.first"] is b and got["layers.1.0"] is c
    assert got["opaque.0"] is d and got["opaque.1"] is e  # None leaf skipped

    renamed = shared.canonical_from_paths(tree, {"layers.0.first": "dense.w"})
    assert list(renamed) == ["bn.mean", "dense.w", "layers.1.0", "opaque.0", "opaque.1"]

    back = shared.tree_from_canonical(tree, shifted(got))
    assert isinstance(back["layers"][0], Pair) and back["layers"][0].second is None
    assert isinstance(back["opaque"], Opaque)
    assert_same(shared.canonical_from_paths(back), shifted(got))
    assert isinstance(back["bn"]["mean"], jax.Array)


def test_core_errors_name_the_leaf():
    tree = {"a": np.zeros(2, np.float32), "b": {"c": np.zeros((2, 3), np.float32)}}
    with pytest.raises(ValueError, match=r"'b\.d'.*match no leaf.*a, b\.c"):
        shared.canonical_from_paths(tree, {"b.d": "x"})
    with pytest.raises(ValueError, match=r"'a'.*'b\.c'"):
        shared.canonical_from_paths(tree, {"b.c": "a"})
    # A dotted dict key collides with a nested path.
    with pytest.raises(ValueError, match=r"'b\.c'.*'b\.c'"):
        shared.canonical_from_paths({**tree, "b.c": np.zeros(1)})
    values = {"a": np.ones(2, np.float32), "b.c": np.ones((2, 3), np.float32)}
    with pytest.raises(ValueError, match=r"missing 'b\.c'"):
        shared.tree_from_canonical(tree, {"a": values["a"]})
    with pytest.raises(ValueError, match=r"extra 'z'"):
        shared.tree_from_canonical(tree, {**values, "z": np.ones(1)})
    with pytest.raises(ValueError, match=r"'b\.c'.*shape \(3, 2\).*shape \(2, 3\)"):
        shared.tree_from_canonical(tree, {**values, "b.c": np.ones((3, 2), np.float32)})
    renamed = {"a": values["a"], "w": values["b.c"]}
    assert _bitwise(shared.tree_from_canonical(tree, renamed, {"b.c": "w"})["b"]["c"], renamed["w"])
    with pytest.raises(ValueError, match=r"'w' \(derived 'b\.c'\)"):
        shared.tree_from_canonical(tree, {"a": values["a"]}, {"b.c": "w"})


def test_template_may_be_abstract():
    tree = {"w": jnp.zeros((2, 3))}
    abstract = jax.eval_shape(lambda: tree)
    back = shared.tree_from_canonical(abstract, {"w": np.ones((2, 3), np.float32)})
    assert _bitwise(back["w"], np.ones((2, 3), np.float32))


# -- one small model per framework ----------------------------------------------------------


class LinenMlp(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        h = nn.Dense(4)(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9)(h)
        return nn.Dense(2)(nn.relu(h))


class NnxMlp(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(3, 4, rngs=rngs)
        self.bn = nnx.BatchNorm(4, momentum=0.9, rngs=rngs)
        self.dense2 = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.dense2(nnx.relu(self.bn(self.dense1(x))))


class HaikuNet(hk.Module):
    def __call__(self, x, is_training: bool):
        h = hk.Linear(4, name="linear_0")(x)
        h = hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9)(h, is_training)
        return hk.Linear(2, name="linear_1")(jax.nn.relu(h))


haiku_net = hk.transform_with_state(lambda x, is_training: HaikuNet(name="net")(x, is_training))


class EqxMlp(eqx.Module):
    dense1: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    dense2: eqx.nn.Linear

    def __init__(self, key: jax.Array, mode: str = "batch"):
        k1, k2 = jax.random.split(key)
        self.dense1 = eqx.nn.Linear(3, 4, key=k1)
        self.bn = eqx.nn.BatchNorm(4, axis_name="batch", momentum=0.9, mode=mode)
        self.dense2 = eqx.nn.Linear(4, 2, key=k2)

    def __call__(self, x, state):
        h, state = self.bn(self.dense1(x), state)
        return self.dense2(jax.nn.relu(h)), state


def eqx_batched(model, x, state):
    return jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)


def linen_init():
    return LinenMlp().init(jax.random.key(0), X, train=False)


def nnx_init():
    model = NnxMlp(nnx.Rngs(0))
    model(X)  # one training step, so that the batch stats are not the init values
    return nnx.split(model, nnx.Param, nnx.BatchStat)


def haiku_init():
    params, state = haiku_net.init(jax.random.key(0), X, True)
    _, state = haiku_net.apply(params, state, None, X, True)  # counters and EMAs move
    return params, state


def eqx_init(mode: str = "batch"):
    model, state = eqx.nn.make_with_state(EqxMlp)(jax.random.key(0), mode)
    _, state = eqx_batched(model, X, state)
    return model, state


@dataclass
class Case:
    """One framework's tree: how to read it, write it, and what it must read as."""

    to: Callable[[Mapping[str, str] | None], dict[str, Any]]
    back: Callable[[Mapping[str, Any], Mapping[str, str] | None], dict[str, Any]]
    expected: dict[str, Any]  # derived name -> the native leaf, by hand
    rename: dict[str, str]  # one rename used by the tests
    leaf: str  # a derived name used in the error tests


def linen_params_case() -> Case:
    p = linen_init()["params"]
    return Case(
        to=lambda r: linen_canonical(p, r),
        back=lambda v, r: linen_canonical(linen_from_canonical(p, v, r), r),
        expected={
            "Dense_0.kernel": p["Dense_0"]["kernel"],
            "Dense_0.bias": p["Dense_0"]["bias"],
            "BatchNorm_0.scale": p["BatchNorm_0"]["scale"],
            "BatchNorm_0.bias": p["BatchNorm_0"]["bias"],
            "Dense_1.kernel": p["Dense_1"]["kernel"],
            "Dense_1.bias": p["Dense_1"]["bias"],
        },
        rename={"Dense_0.kernel": "dense1.kernel", "BatchNorm_0.scale": "bn.scale"},
        leaf="Dense_1.kernel",
    )


def linen_variables_case() -> Case:
    v = linen_init()
    return Case(
        to=lambda r: linen_canonical(v, r),
        back=lambda values, r: linen_canonical(linen_from_canonical(v, values, r), r),
        expected={
            "params.Dense_0.kernel": v["params"]["Dense_0"]["kernel"],
            "params.Dense_0.bias": v["params"]["Dense_0"]["bias"],
            "params.BatchNorm_0.scale": v["params"]["BatchNorm_0"]["scale"],
            "params.BatchNorm_0.bias": v["params"]["BatchNorm_0"]["bias"],
            "params.Dense_1.kernel": v["params"]["Dense_1"]["kernel"],
            "params.Dense_1.bias": v["params"]["Dense_1"]["bias"],
            "batch_stats.BatchNorm_0.mean": v["batch_stats"]["BatchNorm_0"]["mean"],
            "batch_stats.BatchNorm_0.var": v["batch_stats"]["BatchNorm_0"]["var"],
        },
        rename={"batch_stats.BatchNorm_0.mean": "bn.mean"},
        leaf="batch_stats.BatchNorm_0.var",
    )


def nnx_params_case() -> Case:
    _, params, _ = nnx_init()
    return Case(
        to=lambda r: nnx_canonical(params, r),
        back=lambda v, r: nnx_canonical(nnx_from_canonical(params, v, r), r),
        expected={
            "dense1.kernel": params["dense1"]["kernel"][...],
            "dense1.bias": params["dense1"]["bias"][...],
            "bn.scale": params["bn"]["scale"][...],
            "bn.bias": params["bn"]["bias"][...],
            "dense2.kernel": params["dense2"]["kernel"][...],
            "dense2.bias": params["dense2"]["bias"][...],
        },
        rename={"dense1.kernel": "layer1.w", "dense2.bias": "layer2.b"},
        leaf="dense2.kernel",
    )


def nnx_state_case() -> Case:
    _, _, stats = nnx_init()
    return Case(
        to=lambda r: nnx_canonical(stats, r),
        back=lambda v, r: nnx_canonical(nnx_from_canonical(stats, v, r), r),
        expected={"bn.mean": stats["bn"]["mean"][...], "bn.var": stats["bn"]["var"][...]},
        rename={"bn.var": "bn.variance"},
        leaf="bn.mean",
    )


def haiku_params_case() -> Case:
    p, _ = haiku_init()
    return Case(
        to=lambda r: haiku_canonical(p, r),
        back=lambda v, r: haiku_canonical(haiku_from_canonical(p, v, r), r),
        expected={
            "net/linear_0.w": p["net/linear_0"]["w"],
            "net/linear_0.b": p["net/linear_0"]["b"],
            "net/batch_norm.scale": p["net/batch_norm"]["scale"],
            "net/batch_norm.offset": p["net/batch_norm"]["offset"],
            "net/linear_1.w": p["net/linear_1"]["w"],
            "net/linear_1.b": p["net/linear_1"]["b"],
        },
        rename={"net/linear_0.w": "dense1.kernel", "net/batch_norm.offset": "bn.bias"},
        leaf="net/linear_1.w",
    )


def haiku_state_case() -> Case:
    _, s = haiku_init()
    mean, var = s["net/batch_norm/~/mean_ema"], s["net/batch_norm/~/var_ema"]
    return Case(
        to=lambda r: haiku_canonical(s, r),
        back=lambda v, r: haiku_canonical(haiku_from_canonical(s, v, r), r),
        expected={
            "net/batch_norm/~/mean_ema.average": mean["average"],
            "net/batch_norm/~/mean_ema.counter": mean["counter"],
            "net/batch_norm/~/mean_ema.hidden": mean["hidden"],
            "net/batch_norm/~/var_ema.average": var["average"],
            "net/batch_norm/~/var_ema.counter": var["counter"],
            "net/batch_norm/~/var_ema.hidden": var["hidden"],
        },
        rename={"net/batch_norm/~/mean_ema.average": "bn.mean"},
        leaf="net/batch_norm/~/var_ema.hidden",
    )


def equinox_params_case() -> Case:
    model, _ = eqx_init()
    return Case(
        to=lambda r: equinox_canonical(model, r),
        back=lambda v, r: equinox_canonical(equinox_from_canonical(model, v, r), r),
        expected={
            "dense1.weight": model.dense1.weight,
            "dense1.bias": model.dense1.bias,
            "bn.weight": model.bn.weight,
            "bn.bias": model.bn.bias,
            "dense2.weight": model.dense2.weight,
            "dense2.bias": model.dense2.bias,
        },
        rename={"bn.weight": "bn.scale", "dense1.weight": "dense1.kernel_t"},
        leaf="dense2.weight",
    )


def equinox_state_case(mode: str = "batch") -> Case:
    model, state = eqx_init(mode)
    bn = model.bn
    if mode == "batch":
        mean, var = state.get(bn.batch_state_index)
        expected = {
            "bn.batch_counter": state.get(bn.batch_counter),
            "bn.batch_state_index.0": mean,
            "bn.batch_state_index.1": var,
        }
        rename = {"bn.batch_state_index.0": "bn.mean", "bn.batch_state_index.1": "bn.var"}
    else:
        mean, var = state.get(bn.ema_state_index)
        expected = {
            "bn.ema_first_time_index": state.get(bn.ema_first_time_index),
            "bn.ema_state_index.0": mean,
            "bn.ema_state_index.1": var,
        }
        rename = {"bn.ema_state_index.1": "bn.var"}
    return Case(
        to=lambda r: equinox_state_canonical(model, state, r),
        back=lambda v, r: equinox_state_canonical(
            model, equinox_state_from_canonical(model, state, v, r), r
        ),
        expected=expected,
        rename=rename,
        leaf="bn.ema_state_index.0" if mode == "ema" else "bn.batch_state_index.1",
    )


CASES = {
    "linen_params": linen_params_case,
    "linen_variables": linen_variables_case,
    "nnx_params": nnx_params_case,
    "nnx_state": nnx_state_case,
    "haiku_params": haiku_params_case,
    "haiku_state": haiku_state_case,
    "equinox_params": equinox_params_case,
    "equinox_state": equinox_state_case,
    "equinox_state_ema": lambda: equinox_state_case("ema"),
}


@pytest.fixture(params=list(CASES))
def case(request) -> Case:
    return CASES[request.param]()


def test_derived_names_are_the_documented_layout(case: Case):
    assert_same(case.to(None), case.expected)


def test_rename_renames_only_the_named_leaves(case: Case):
    got = case.to(case.rename)
    expected = {case.rename.get(name, name): v for name, v in case.expected.items()}
    assert_same(got, expected)
    assert not set(case.rename) & set(got)


@pytest.mark.parametrize("renamed", [False, True])
def test_round_trip_is_bitwise(case: Case, renamed: bool):
    rename = case.rename if renamed else None
    new = shifted(case.to(rename))
    assert_same(case.back(new, rename), new)


def test_errors_name_the_leaf(case: Case):
    values = case.to(None)
    leaf, name = case.leaf, re.escape(case.leaf)
    with pytest.raises(ValueError, match=rf"'no\.such'.*match no leaf.*{name}"):
        case.to({"no.such": "x"})
    other = re.escape(next(n for n in values if n != case.leaf))
    with pytest.raises(ValueError, match=rf"'{other}'.*'{name}'|'{name}'.*'{other}'"):
        case.to({leaf: next(n for n in values if n != case.leaf)})
    with pytest.raises(ValueError, match=rf"missing '{name}'"):
        case.back({k: v for k, v in values.items() if k != leaf}, None)
    with pytest.raises(ValueError, match=r"extra 'surplus\.w'"):
        case.back({**values, "surplus.w": np.zeros(1)}, None)
    shape = tuple(np.shape(values[leaf]))
    wrong = np.zeros((*shape, 2), np.asarray(values[leaf]).dtype)
    shapes = rf"has shape {re.escape(str((*shape, 2)))}.* has shape {re.escape(str(shape))}"
    with pytest.raises(ValueError, match=rf"'{name}' {shapes}"):
        case.back({**values, leaf: wrong}, None)


# -- what the frameworks do with the rebuilt trees -------------------------------------------


def test_linen_rebuilt_variables_apply_and_stay_frozen_if_frozen():
    variables = linen_init()
    new = shifted(linen_canonical(variables))
    rebuilt = linen_from_canonical(variables, new)
    assert isinstance(rebuilt, dict) and not isinstance(rebuilt, FrozenDict)
    out = LinenMlp().apply(rebuilt, X, train=False)
    by_hand = {
        col: {
            mod: {k: jnp.asarray(new[f"{col}.{mod}.{k}"]) for k in variables[col][mod]}
            for mod in variables[col]
        }
        for col in variables
    }
    expected = LinenMlp().apply(by_hand, X, train=False)
    assert _bitwise(out, expected)
    frozen = linen_from_canonical(FrozenDict(variables), new)
    assert isinstance(frozen, FrozenDict)
    assert_same(linen_canonical(frozen), new)


def test_nnx_result_merges_and_template_is_untouched():
    graphdef, params, stats = nnx_init()
    before = {k: np.array(v) for k, v in nnx_canonical(params).items()}
    new = shifted(before)
    rebuilt = nnx_from_canonical(params, new)
    assert isinstance(rebuilt, nnx.State)
    assert_same(nnx_canonical(params), before)  # the template keeps its values
    model = nnx.merge(graphdef, rebuilt, stats)
    assert _bitwise(model.dense1.kernel[...], new["dense1.kernel"])
    assert _bitwise(model.bn.scale[...], new["bn.scale"])
    assert isinstance(model.dense2.bias, nnx.Param)
    # An abstract template (as an adapter builds it with nnx.eval_shape) works too.
    _, abstract, _ = nnx.split(nnx.eval_shape(lambda: NnxMlp(nnx.Rngs(0))), nnx.Param, ...)
    assert_same(nnx_canonical(nnx_from_canonical(abstract, new)), new)
    # Traceable, as `to_canonical` must be.
    assert_same(jax.jit(nnx_canonical)(rebuilt), new)


def test_haiku_rebuilt_params_apply():
    params, state = haiku_init()
    new = shifted(haiku_canonical(params))
    rebuilt = haiku_from_canonical(params, new)
    assert sorted(rebuilt) == sorted(params)
    out, _ = haiku_net.apply(rebuilt, state, None, X, False)
    assert out.shape == (5, 2)
    # The same numbers through the native tree built by hand.
    by_hand = {m: {k: jnp.asarray(new[f"{m}.{k}"]) for k in params[m]} for m in params}
    assert _bitwise(out, haiku_net.apply(by_hand, state, None, X, False)[0])


def test_equinox_rebuilt_model_keeps_static_parts_and_state_stays_valid():
    model, state = eqx_init()
    new = shifted(equinox_canonical(model))
    rebuilt = equinox_from_canonical(model, new)
    assert rebuilt.bn.axis_name == "batch" and rebuilt.bn.momentum == 0.9
    assert rebuilt.bn.batch_state_index is model.bn.batch_state_index
    assert _bitwise(rebuilt.dense1.weight, new["dense1.weight"])
    assert not _bitwise(model.dense1.weight, new["dense1.weight"])  # template untouched

    # After a step BatchNorm's counter is stored weakly typed; the canonical value (through
    # NumPy) is not, which `State.set` would refuse.
    assert state.get(model.bn.batch_counter).weak_type
    state_values = shifted(equinox_state_canonical(model, state))
    new_state = equinox_state_from_canonical(model, state, state_values)
    # `State.set` invalidates the state it is called on: the template must still be usable.
    assert not _bitwise(state.get(model.bn.batch_counter), state_values["bn.batch_counter"])
    out, _ = eqx_batched(rebuilt, X, new_state)
    assert out.shape == (5, 2)
    traced = eqx.filter_jit(equinox_state_canonical)(model, new_state)
    assert_same(traced, state_values)


def test_equinox_model_built_without_make_with_state_has_no_state_in_its_params():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = EqxMlp(jax.random.key(0))  # its StateIndexes still carry their init values
    assert sorted(equinox_canonical(model)) == sorted(equinox_params_case().expected)


# -- two layouts, one mapping each ------------------------------------------------------------


class NnxTwoLayer(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense1 = nnx.Linear(3, 4, rngs=rngs)
        self.dense2 = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.dense2(nnx.relu(self.dense1(x)))


class EqxTwoLayer(eqx.Module):
    layers: list[eqx.nn.Linear]

    def __init__(self, key: jax.Array):
        k1, k2 = jax.random.split(key)
        self.layers = [eqx.nn.Linear(3, 4, key=k1), eqx.nn.Linear(4, 2, key=k2)]


haiku_two_layer = hk.transform(lambda x: hk.nets.MLP([4, 2])(x))

CANONICAL = ["fc1.b", "fc1.w", "fc2.b", "fc2.w"]
NNX_RENAME = {"dense1.kernel": "fc1.w", "dense1.bias": "fc1.b"}
NNX_RENAME |= {"dense2.kernel": "fc2.w", "dense2.bias": "fc2.b"}
EQX_RENAME = {"layers.0.weight": "fc1.w", "layers.0.bias": "fc1.b"}
EQX_RENAME |= {"layers.1.weight": "fc2.w", "layers.1.bias": "fc2.b"}
HAIKU_RENAME = {"mlp/~/linear_0.w": "fc1.w", "mlp/~/linear_0.b": "fc1.b"}
HAIKU_RENAME |= {"mlp/~/linear_1.w": "fc2.w", "mlp/~/linear_1.b": "fc2.b"}


def test_two_layouts_map_to_the_same_names_with_one_rename_each():
    _, nnx_params = nnx.split(NnxTwoLayer(nnx.Rngs(0)), nnx.Param)
    eqx_model = EqxTwoLayer(jax.random.key(0))
    hk_params = haiku_two_layer.init(jax.random.key(0), X)

    from_nnx = nnx_canonical(nnx_params, NNX_RENAME)
    from_eqx = equinox_canonical(eqx_model, EQX_RENAME)
    from_haiku = haiku_canonical(hk_params, HAIKU_RENAME)
    assert sorted(from_nnx) == sorted(from_eqx) == sorted(from_haiku) == CANONICAL
    assert _bitwise(from_eqx["fc1.w"], eqx_model.layers[0].weight)
    assert _bitwise(from_haiku["fc2.b"], hk_params["mlp/~/linear_1"]["b"])

    # NNX and Haiku both store (in, out) kernels: the mapping alone moves the weights over.
    ported = haiku_from_canonical(hk_params, from_nnx, HAIKU_RENAME)
    assert _bitwise(ported["mlp/~/linear_0"]["w"], nnx_params["dense1"]["kernel"][...])
    nnx_out = nnx.merge(nnx.graphdef(NnxTwoLayer(nnx.Rngs(0))), nnx_params)(X)
    np.testing.assert_allclose(haiku_two_layer.apply(ported, None, X), nnx_out, rtol=1e-6)

    # Equinox stores (out, in): a transpose is not a rename, and the shape check says so.
    with pytest.raises(ValueError, match=r"'fc1\.w' \(derived 'layers\.0\.weight'\).*\(3, 4\)"):
        equinox_from_canonical(eqx_model, from_nnx, EQX_RENAME)
    transposed = {k: v.T if k.endswith(".w") else v for k, v in from_nnx.items()}
    ported_eqx = equinox_from_canonical(eqx_model, transposed, EQX_RENAME)
    assert _bitwise(ported_eqx.layers[1].weight, nnx_params["dense2"]["kernel"][...].T)
