"""The audit: a restored tree against the live one, leaf by leaf, on four broken saves.

Each broken case is a mistake users have reported (see issue 12): a custom NNX Variable left
out of the saved filter, an optimizer state not saved, an RNG stream not saved, a dtype
cast on restore. Each must be reported, naming the leaf; a correct save reports nothing.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from shared.checkpoint import (
    Built,
    Case,
    CheckpointError,
    CheckpointStore,
    audit,
    savable,
)


def _trained(case: Case, steps: int):
    """A case's trainer after `steps` steps, and a fresh one (its initial values)."""
    built = Built(case)
    trainer, fresh = built.trainer(), built.trainer()
    from shared.core import Trajectory

    sink = Trajectory()
    sink.record_initial(*trainer.canonical())
    trainer.run(*built.segment(0, steps), sink)
    return trainer, fresh


def _kinds(findings) -> dict[str, str]:
    return {f.leaf: f.kind for f in findings}


# --- closed-form cases: the audit's own verdicts --------------------------------------------


def test_a_faithful_restore_reports_nothing() -> None:
    live = {"w": jnp.arange(3.0), "opt": (jnp.ones(2), jnp.int32(4))}
    copy = jax.tree.map(lambda x: jnp.array(x, copy=True), live)
    assert audit(live, copy, saved={"w", "opt.0", "opt.1"}) == []


def test_each_kind_is_named_by_leaf() -> None:
    live = {"a": jnp.ones(3), "b": jnp.ones(3), "c": jnp.ones((1, 3)), "d": jnp.full(2, 5.0)}
    initial = {"a": jnp.zeros(3), "b": jnp.zeros(3), "c": jnp.zeros((1, 3)), "d": jnp.zeros(2)}
    restored = {
        "a": jnp.zeros(3),  # back at its initial value, though saved
        "b": jnp.ones(3, jnp.bfloat16),  # cast
        "c": jnp.ones(3),  # reshaped: (1, 3) -> (3,)
        "e": jnp.ones(1),  # unexpected; "d" dropped
    }
    findings = audit(live, restored, initial=initial)
    assert _kinds(findings) == {
        "a": "reset",
        "b": "cast",
        "c": "reshaped",
        "d": "dropped",
        "e": "unexpected",
    }
    assert "float32 -> bfloat16" in str(findings[1])
    assert "(1, 3) -> (3,)" in str(findings[2])


def test_a_changed_value_gives_its_size() -> None:
    findings = audit({"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([1.0, 2.5])})
    assert _kinds(findings) == {"w": "changed"}
    assert "0.5" in findings[0].detail


# --- the four broken saves ---------------------------------------------------------------------


class Calls(nnx.Variable):
    """A user's own Variable type: how many training calls the model has seen."""


class CountingMlp(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.linear = nnx.Linear(4, 2, rngs=rngs)
        self.bn = nnx.BatchNorm(2, rngs=rngs)
        self.calls = Calls(jnp.array(0))

    def __call__(self, x: jax.Array) -> jax.Array:
        self.calls[...] += 1
        return self.bn(self.linear(x))


def test_a_custom_nnx_variable_left_out_of_the_filter_is_reported(tmp_path: Path) -> None:
    """maxtext PR #4343: a custom Variable "falls out of the checkpoint silently and reverts
    to zeros on resume". The save filters Params and BatchStats, as many examples do."""
    live = CountingMlp(rngs=nnx.Rngs(0))
    for _ in range(3):
        live(jnp.ones((8, 4)))
    with CheckpointStore(tmp_path / "ckpt", create=True) as store:
        store.save(3, nnx.state(live, nnx.Any(nnx.Param, nnx.BatchStat)), {"model": "counting"})
        fresh = CountingMlp(rngs=nnx.Rngs(0))
        initial = nnx.state(fresh)
        nnx.update(fresh, store.restore(nnx.state(fresh, nnx.Any(nnx.Param, nnx.BatchStat))))
        saved = set(store.meta()["leaves"])
    findings = audit(nnx.state(live), nnx.state(fresh), saved=saved, initial=initial)
    assert _kinds(findings) == {"calls.value": "not saved"}
    assert "restored at its initial value" in findings[0].detail
    # The filtered leaves themselves came back exactly.
    assert jnp.array_equal(fresh.bn.mean[...], live.bn.mean[...])


def test_an_unsaved_optimizer_state_is_reported(tmp_path: Path) -> None:
    """maxtext PR #4343: "optimizer state was silently reset too". A Linen TrainState
    saved as params and batch_stats only, restored into a fresh TrainState."""
    trainer, fresh = _trained(Case("mlp-bn", "flax_linen", "native", 6, optimizer="momentum"), 3)
    live = trainer.checkpoint()  # the TrainState
    initial = fresh.checkpoint()
    with CheckpointStore(tmp_path / "ckpt", create=True) as store:
        store.save(3, {"params": live.params, "batch_stats": live.batch_stats}, {"model": "m"})
        back = store.restore({"params": initial.params, "batch_stats": initial.batch_stats})
        saved = set(store.meta()["leaves"])
    restored = initial.replace(**back)
    kinds = _kinds(audit(savable(live), savable(restored), saved=saved, initial=savable(initial)))
    layers = ("bn.bias", "bn.scale", "dense1.bias", "dense1.kernel", "dense2.bias", "dense2.kernel")
    assert kinds == {"step": "not saved", **{f"opt_state.0.trace.{p}": "not saved" for p in layers}}


def test_an_unsaved_rng_stream_is_reported(tmp_path: Path) -> None:
    """orbax #620, #2540: NNX's RNG state. The model's Params and the optimizer are saved,
    the dropout layer's `nnx.Rngs` stream (key and count) is not."""
    case = Case("mlp-dropout", "flax_nnx", "native", 6, optimizer="adam", mode="native")
    trainer, fresh = _trained(case, 3)
    live, initial = trainer.checkpoint(), fresh.checkpoint()
    with CheckpointStore(tmp_path / "ckpt", create=True) as store:
        partial = {
            "model": nnx.filter_state(live["model"], nnx.Param),
            "optimizer": live["optimizer"],
        }
        store.save(3, partial, {"model": "m"})
        template = {
            "model": nnx.filter_state(initial["model"], nnx.Param),
            "optimizer": initial["optimizer"],
        }
        back = store.restore(template)
        saved = set(store.meta()["leaves"])
    fresh.restore({"model": back["model"], "optimizer": back["optimizer"]})
    kinds = _kinds(
        audit(savable(live), savable(fresh.checkpoint()), saved=saved, initial=savable(initial))
    )
    assert kinds == {"model.dropout.rngs.count.value": "not saved"}, kinds
    # The key itself is the seed's either way; the count is the stream's position.
    assert int(live["model"]["dropout"]["rngs"]["count"][...]) == 3


def test_a_dtype_cast_on_restore_is_reported(tmp_path: Path) -> None:
    """The field notes: the target's dtype silently casts the data. Our own restore refuses
    it; restored through orbax with a bfloat16 target, the audit names every cast leaf."""
    trainer, _ = _trained(Case("mlp-bn", "haiku", "harness", 6, optimizer="sgd"), 3)
    live = trainer.checkpoint()
    directory = tmp_path / "ckpt"
    with CheckpointStore(directory, create=True) as store:
        store.save(3, live, {"model": "m"})
        low = jax.tree.map(lambda x: x.astype(jnp.bfloat16) if x.dtype == jnp.float32 else x, live)
        with pytest.raises(CheckpointError, match=r"float32\[.*\], the target bfloat16"):
            store.restore(low)
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, savable(low))
        back = store.manager.restore(
            3, args=ocp.args.Composite(train=ocp.args.StandardRestore(target))
        ).train
    kinds = _kinds(audit(savable(live), back))
    assert kinds, "orbax no longer casts silently: revisit the field note"
    assert kinds == {name: "cast" for name in savable_names(live)}, kinds
    assert back["params"]["mlp_bn/dense1"]["w"].dtype == jnp.bfloat16


def savable_names(tree) -> list[str]:
    from shared.checkpoint import named_leaves

    return [k for k, v in named_leaves(savable(tree)).items() if v.dtype == jnp.float32]
