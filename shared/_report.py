"""Showing a `compare` run: a rich table on screen, a JSON file, a PNG plot."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ._run import CompareResult


def comparison_rows(result: CompareResult) -> tuple[list[str], list[tuple[str, ...]]]:
    """The comparison as plain text: column names, and one row per trajectory.

    The last cell is the verdict: `reference`, `agrees`, `DIVERGES` or `FAILED <error>`.
    Shared by the terminal table and the docs site.
    """
    per_leaf = any(p.loss_max_ulp is not None for p in result.pairs)
    head = [
        "trajectory",
        "final loss",
        "max |diff|",
        "max ULP (loss)" if per_leaf else "max ULP",
        "bitwise",
        "tolerance",
        "first divergence",
        "verdict",
    ]
    ref = result.trajectories[result.reference]
    rows: list[tuple[str, ...]] = [
        (result.reference, _loss(ref.loss), "-", "-", "-", "-", "-", "reference")
    ]
    for p in result.pairs:
        tolerance = p.tolerance.describe()
        if p.loss_tolerance is not None:
            tolerance = f"loss {p.loss_tolerance.describe()}; {tolerance}"
        rows.append(
            (
                p.a,
                _loss(result.trajectories[p.a].loss),
                f"{p.max_abs:.3g}",
                _ulp(p.max_ulp if p.loss_max_ulp is None else p.loss_max_ulp),
                "yes" if p.bitwise else "no",
                tolerance,
                "-" if p.first_divergence is None else str(p.first_divergence),
                "agrees" if p.agree else "DIVERGES",
            )
        )
    for name, error in result.errors.items():
        rows.append((name, "-", "-", "-", "-", "-", "-", f"FAILED {error}"))
    return head, rows


_RIGHT = {"final loss", "max |diff|", "max ULP", "max ULP (loss)"}
_VERDICT_STYLE = {"agrees": "green", "DIVERGES": "bold red", "FAILED": "bold red"}


def table(result: CompareResult) -> Table:
    """One row per trajectory: final loss, distance to the reference, verdict."""
    t = Table(
        title=f"{result.model}: every trajectory against {result.reference}", title_justify="left"
    )
    head, rows = comparison_rows(result)
    for column in head:
        justify = "right" if column in _RIGHT else "center" if column == "bitwise" else "left"
        t.add_column(column, justify=justify)  # type: ignore[arg-type]
    for *cells, verdict in rows:
        style = _VERDICT_STYLE.get(verdict.split()[0])
        t.add_row(*cells, f"[{style}]{escape(verdict)}[/]" if style else escape(verdict))
    return t


def _loss(losses: list[np.ndarray]) -> str:
    return f"{float(losses[-1]):.9g}" if losses else "-"


def _ulp(ulp: int) -> str:
    return "NaN" if ulp == np.iinfo(np.int64).max else str(ulp)


def eval_table(result: CompareResult) -> Table:
    """mlp-bn: each trajectory's test loss and accuracy, and its logits' distance."""
    t = Table(
        title=f"eval on the test split, logits against {result.reference}", title_justify="left"
    )
    for column in ("trajectory", "test loss", "accuracy", "max |diff| logits", "verdict"):
        t.add_column(column, justify="left" if column == "trajectory" else "right")
    atol = result.eval_atol or 0.0
    for name, ev in result.evals.items():
        diff = result.eval_diffs.get(name)
        verdict = (
            "reference"
            if diff is None
            else "[green]agrees[/]"
            if diff <= atol
            else "[bold red]DIFFERS[/]"
        )
        t.add_row(
            name,
            f"{ev['loss']:.6g}",
            f"{ev['accuracy']:.4f}",
            "-" if diff is None else f"{diff:.3g}",
            verdict,
        )
    return t


def drift_table(result: CompareResult) -> Table:
    """mlp-bn `--defaults`: each framework's drift from the aligned reference, by default."""
    t = Table(
        title=f"drift from {result.reference}, with all defaults and one default at a time",
        title_justify="left",
    )
    for column in (
        "framework",
        "default kept",
        "what it is",
        "max |diff| loss",
        "max |diff| running stats",
        "max |diff| eval logits",
        "accuracy",
        "responsible",
    ):
        t.add_column(column, justify="left" if column in ("framework", "what it is") else "right")
    for d in result.drift:
        t.add_row(
            d["impl"],
            d["knob"],
            d["default"],
            f"{d['loss_max_abs']:.3g}",
            f"{d['state_max_abs']:.3g}",
            f"{d['eval_max_abs']:.3g}",
            f"{d['eval_accuracy']:.4f}",
            "" if d["knob"] == "all" else "[bold]yes[/]" if d["responsible"] else "no",
        )
    return t


def print_report(result: CompareResult, console: Console) -> None:
    """The table, then one line per failure and a summary line."""
    console.print(table(result))
    if result.evals:
        console.print(eval_table(result))
    if result.drift:
        console.print(drift_table(result))
        for d in result.drift:
            if d["knob"] != "all" and d["responsible"]:
                console.print(f"{d['impl']} drifts because of its default {d['default']}")
    tolerances = {p.tolerance for p in result.pairs} | {
        p.loss_tolerance for p in result.pairs if p.loss_tolerance is not None
    }
    for tol in sorted(tolerances, key=lambda t: (t.max_ulp, t.atol)):
        console.print(f"[dim]tolerance {tol.describe()}: {tol.reason}[/]")
    for p in result.pairs:
        if not p.agree:
            console.print(
                f"[bold red]{p.a}[/] diverges from {p.b} first at {p.first_divergence} "
                f"(tolerance: {p.tolerance.describe()})"
            )
    for name, error in result.errors.items():
        console.print(f"[bold red]{name}[/] failed: {error}")
    verdict = "[green]all trajectories agree[/]" if result.agree else "[bold red]disagreement[/]"
    console.print(
        f"{verdict} within the declared tolerances ({len(result.trajectories)} "
        f"trajectories, {result.config['steps']} steps)"
    )


def write_json(result: CompareResult, path: str | Path) -> None:
    """Write the run atomically: a crash never leaves a half-written file at `path`."""
    write_atomic(path, json.dumps(result.to_json(), indent=1).encode())


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plot(result: CompareResult, path: str | Path) -> None:
    """A PNG of loss, bias[0] and mean[0] per step, and each run's distance to the reference."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), constrained_layout=True)
    ref = result.trajectories[result.reference]
    styles = ["-", "--", ":", "-."]
    for i, (name, traj) in enumerate(result.trajectories.items()):
        style: dict[str, Any] = {
            "linestyle": styles[i % len(styles)],
            "linewidth": 1.2,
            "label": name,
        }
        steps = np.arange(1, traj.steps + 1)
        axes[0, 0].plot(steps, np.asarray(traj.loss, np.float64), **style)
        for ax, group, leaf in (
            (axes[0, 1], traj.params, "bias"),
            (axes[1, 0], traj.state, "mean"),
        ):
            if leaf in group:
                values = [np.ravel(v)[0] for v in group[leaf]]
                ax.plot(np.arange(traj.steps + 1), values, **style)
        if name != result.reference:
            axes[1, 1].plot(np.arange(traj.steps + 1), _distance(traj, ref), **style)
    axes[0, 0].set(title="loss", xlabel="step", yscale="log")
    axes[0, 1].set(title="params.bias[0]", xlabel="step")
    axes[1, 0].set(title="state.mean[0]", xlabel="step")
    axes[1, 1].set(title=f"max |difference| to {result.reference} (0 = bitwise)", xlabel="step")
    axes[1, 1].set_yscale("symlog", linthresh=1e-9)  # shows exact zeros and tiny gaps alike
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize="small")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())


def _distance(traj: Any, ref: Any) -> np.ndarray:
    """Per step, the largest |difference| over every leaf recorded after that step."""
    out = np.zeros(traj.steps + 1)
    for group in ("params", "state"):
        a_leaves, b_leaves = getattr(traj, group), getattr(ref, group)
        for name in a_leaves.keys() & b_leaves.keys():
            for s, (a, b) in enumerate(zip(a_leaves[name], b_leaves[name], strict=False)):
                if np.shape(a) == np.shape(b):
                    out[s] = max(out[s], float(np.max(np.abs(np.float64(a) - np.float64(b)))))
    for s, (a, b) in enumerate(zip(traj.loss, ref.loss, strict=False), start=1):
        out[s] = max(out[s], abs(float(a) - float(b)))
    return out
