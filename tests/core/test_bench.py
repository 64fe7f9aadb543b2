"""The bench's analysis, judged on rows and programs whose answers are known in closed form.

No timing is asserted here: speed is measured by `state-rosetta bench`, not by tests.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import shared
from shared.bench import (
    Row,
    device_models,
    device_shape,
    fit_depths,
    passes,
    plot_depths,
    targets,
)
from shared.bench import plot as bench_plot
from shared.cli import main

MOST_DEVICES = 8
"""The largest device count the recorded device bench uses (docs/parallel.md: 1, 2, 4, 8)."""


def _row(impl, path, shape, median, *, size="tiny", depth=None, leaves=None, spread=0.0):
    # The baseline's median is 10.0 in every test here.
    return Row(
        impl,
        path,
        "bias-stack",
        shape,
        0.1,
        median,
        median - spread,
        median + spread,
        median / 10.0,
        "jax/native",
        size=size,
        depth=depth,
        leaves=leaves,
    )


def test_passes_counts_one_read_and_one_write_for_a_copy():
    # A negation reads its input once and writes its output once, whatever XLA fuses.
    x = jax.ShapeDtypeStruct((256, 128), jnp.float32)
    compiled = jax.jit(jnp.negative).lower(x).compile()
    counted = passes(compiled.as_text(), 256 * 128, 0.0)
    assert (counted.kernels, counted.batch_reads, counted.batch_writes) == (1, 1, 1)
    assert counted.batch_bytes == 2 * 256 * 128 * 4


def test_passes_reads_tuples_and_skips_small_buffers():
    hlo = """HloModule m

ENTRY %main (p: f32[64,4], b: f32[4]) -> (f32[4], f32[]) {
  %p = f32[64,4]{1,0} parameter(0)
  %b = f32[4]{0} parameter(1)
  %f.1 = f32[64,4]{1,0} fusion(%p, %b), kind=kLoop, calls=%c1
  %f.2 = (f32[4]{0}, f32[]) fusion(%f.1, %p), kind=kInput, calls=%c2
  %g = f32[4]{0} get-tuple-element(%f.2), index=0
  %h = f32[] get-tuple-element(%f.2), index=1
  ROOT %t = (f32[4]{0}, f32[]) tuple(%g, %h)
}
"""
    counted = passes(hlo, 64 * 4, 1.0)
    # f.1 reads p (the small b does not count) and writes a batch-sized buffer; f.2 reads two.
    assert (counted.kernels, counted.fusions) == (2, 2)
    assert (counted.batch_reads, counted.batch_writes) == (3, 1)
    assert counted.batch_bytes == 4 * 64 * 4 * 4


def test_depth_fit_recovers_a_line():
    # time = 5 + 2 L us at the median, 4 + 1.5 L at p10 and 6 + 3 L at p90; 2 L + 1 leaves.
    rows = []
    for depth in (1, 4, 16, 64):
        median = (5 + 2 * depth) * 1e-6
        row = _row("a", "native", f"L{depth} B8xD4", median, depth=depth, leaves=2 * depth + 1)
        row.step_s_p10, row.step_s_p90 = (4 + 1.5 * depth) * 1e-6, (6 + 3 * depth) * 1e-6
        rows.append(row)
    (fit,) = fit_depths(rows)
    assert fit.per_layer_us == pytest.approx(2.0)
    assert fit.intercept_us == pytest.approx(5.0)
    assert fit.stderr_us == pytest.approx(0.0, abs=1e-9)
    assert (fit.per_layer_us_p10, fit.per_layer_us_p90) == pytest.approx((1.5, 3.0))
    assert fit.per_leaf_us == pytest.approx(1.0)  # 2 us per layer over 2 leaves per layer
    assert fit.depths == (1, 4, 16, 64)


def test_depth_targets_judge_every_depth_and_each_frameworks_idiom():
    rows = []
    for depth in (1, 4):
        shape = f"L{depth} B8xD4"
        rows += [
            _row("jax", "native", shape, 10.0, depth=depth),
            _row("nnx", "native", shape, 170.0, depth=depth),
            _row("nnx", "native:split-merge", shape, 12.0, depth=depth),
            _row("nnx", "harness", shape, 10.0 if depth == 1 else 11.5, depth=depth),
            _row("eqx", "native", shape, 50.0, depth=depth),
            _row("eqx", "harness", shape, 10.5, depth=depth),
        ]
    found = {t.text.split(":")[1].strip(): t for t in targets(rows)}
    harness = next(t for t in targets(rows) if "harness step" in t.text)
    assert not harness.ok and "worst 1.15x (nnx, L4 B8xD4)" in harness.text
    assert found["nnx's fastest own idiom <= 1.25x jax/native at L1 B8xD4"].ok
    assert (
        "native:split-merge 1.20x"
        in found["nnx's fastest own idiom <= 1.25x jax/native at L1 B8xD4"].text
    )
    assert not found["eqx's fastest own idiom <= 1.25x jax/native at L1 B8xD4"].ok


def test_quick_does_not_judge_the_large_widths():
    rows = [
        _row("jax", "native", "L1 B512", 10.0, size="large", depth=1),
        _row("jax", "native", "L4 B512", 10.0, size="large", depth=4),
        _row("a", "harness", "L1 B512", 20.0, size="large", depth=1),
        _row("a", "harness", "L4 B512", 20.0, size="large", depth=4),
        _row("jax", "native", "L1 B8", 10.0, depth=1),
        _row("a", "harness", "L1 B8", 10.0, depth=1),
        _row("a", "harness", "L4 B8", 10.0, depth=4),
    ]
    large = [t for t in targets(rows, quick=True) if "large width" in t.text]
    assert len(large) == 1 and not large[0].ok and not large[0].judged
    assert [t.judged for t in targets(rows) if "large width" in t.text] == [True]


def test_depth_plot_has_a_panel_per_width_and_framework(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    rows = [
        _row(impl, path, f"L{d} {shape}", 10.0 * d, size=size, depth=d, spread=1.0)
        for impl, path in (("jax", "native"), ("a", "native"), ("a", "harness"))
        for size, shape in (("tiny", "B8xD4"), ("large", "B512xD512"))
        for d in (1, 4, 16)
    ]
    plot_depths(rows, tmp_path / "depth.png")
    assert (tmp_path / "depth.png").read_bytes().startswith(b"\x89PNG")
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 4  # two widths x two implementations
    for ax in panels:
        assert ax.lines, f"empty panel {ax.get_title()}"
        assert ax.get_xlabel() == "layers L" and [t.get_text() for t in ax.get_xticklabels()]
    # Panel "a" draws its two paths and the grey baseline; panel "jax" its own native only.
    labels = {ax.get_title(): sorted({c.get_label() for c in ax.containers}) for ax in panels}
    assert labels["a, B8xD4"] == ["a/harness", "a/native", "jax/native"]
    assert labels["jax, B8xD4"] == ["jax/native"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["native", "harness", "baseline: jax/native"]
    # No two paths share a line style and marker: each line is told apart by them alone.
    handles = fig.legends[0].legend_handles[:-1]
    assert len({(h.get_linestyle(), h.get_marker()) for h in handles}) == len(handles)
    # Each line is its rows' medians in microseconds at their depths (here 10 s x L).
    panel = next(ax for ax in panels if ax.get_title() == "a, B8xD4")
    (native,) = [c for c in panel.containers if c.get_label() == "a/native"]
    line = native.lines[0]
    assert list(line.get_xdata()) == [1, 4, 16]
    np.testing.assert_allclose(line.get_ydata(), [1e7, 4e7, 16e7])


def test_depth_plot_gives_every_path_its_own_style(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    paths = ["native", *(f"native:v{i}" for i in range(11)), "harness", "scan"]
    rows = [_row("jax", "native", f"L{d} B8xD4", 10.0, depth=d) for d in (1, 4)]
    rows += [_row("a", p, f"L{d} B8xD4", 10.0, depth=d) for p in paths for d in (1, 4)]
    plot_depths(rows, tmp_path / "depth.png")
    (fig,) = figures
    handles = fig.legends[0].legend_handles[:-1]  # the last is the baseline's grey line
    assert [h.get_label() for h in handles] == paths
    assert len({(h.get_linestyle(), h.get_marker()) for h in handles}) == len(paths)


def test_bar_plot_tells_every_path_apart_and_labels_its_axes(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    paths = ["native", *(f"native:v{i}" for i in range(10)), "harness-pytree", "harness", "scan"]
    rows = [_row("jax", "native", "B8xD4", 10.0)]
    rows += [_row("a", p, "B8xD4", 10.0 + i, spread=1.0) for i, p in enumerate(paths)]
    rows += [_row("b", "only-here", "B64xD64", 10.0, spread=1.0)]  # a path of one panel only
    rows += [_row("jax", "native", "B64xD64", 10.0)]
    bench_plot(rows, tmp_path / "bars.png")
    (fig,) = figures
    legend = fig.legends[0]
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels == [*paths, "only-here"]  # every path, the last from the second panel
    looks = {(tuple(h.get_facecolor()), h.get_hatch()) for h in legend.legend_handles}
    assert len(looks) == len(labels)
    for ax in fig.axes:
        if ax.get_visible() and ax.axison:
            assert ax.get_xlabel() and ax.get_ylabel() and ax.containers
            # each bar carries a p10-p90 error bar
            assert any(len(c) == 3 for c in ax.containers)


def _examples(shape) -> int:
    return int(jax.tree.leaves(shape.batches)[0].shape[1])


def _size(shape) -> int:
    return sum(int(np.prod(leaf.shape[1:])) for leaf in jax.tree.leaves(shape.batches))


def test_the_device_bench_times_every_benchmarked_model_at_its_largest_shape():
    specs = {name: shared.load_spec(name) for name in shared.MODELS}
    assert device_models() == tuple(name for name, spec in specs.items() if spec.bench)
    for model in device_models():
        shape = device_shape(model, quick=True)
        own = specs[model].bench(True, np.random.default_rng(0))
        assert shape.label == max(own, key=_size).label, model
        assert shape.baseline[0] in shared.implementations(model), model
        assert _examples(shape) % MOST_DEVICES == 0, (model, shape.label)
    unbenched = next(name for name, spec in specs.items() if spec.bench is None)
    with pytest.raises(ValueError, match=f"model {unbenched} has no bench shapes"):
        device_shape(unbenched, quick=True)


@pytest.mark.slow  # a process per model, mode and device count: minutes on 2 cores
def test_the_device_bench_runs_every_benchmarked_model_in_every_mode(tmp_path, capsys):
    out = tmp_path / "devices.json"
    assert main(["bench", "--devices", "1,2", "--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    seen = {(r["model"], r["mode"], r["devices"]) for r in rows}
    assert seen == {
        (m, mode, n) for m in device_models() for mode in ("shard_map", "jit") for n in (1, 2)
    }
    for row in rows:
        shape = device_shape(row["model"], quick=True)
        assert row["shape"] == f"{shape.label} ({shape.baseline[0]})"
        assert row["median_us"] > 0
        if row["devices"] == 1:
            assert row["ratio_to_one_device"] == 1.0
