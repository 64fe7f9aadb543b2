"""Recorded bench runs as Markdown tables, for `docs/performance.md`.

Every number the page shows comes from a recorded run (`state-rosetta bench --json`): the
page's generated blocks are rendered from the JSON files by `state-rosetta docs`, and
`docs --check` fails when a block differs from what the files give.

Each function takes the runs as `{label: data}`, one column group per run (the release sets
side by side), where `data` is a file written by `write_json`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Runs = Mapping[str, Mapping[str, Any]]


def markdown_table(head: list[str], rows: list[list[str]], right: int) -> str:
    """A Markdown table whose columns from `right` on are right-aligned."""
    align = ["---" if i < right else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (row["model"], row["shape"], row["impl"], row["path"])


def runs_header(runs: Runs) -> str:
    """One line per run: its command, wall time, device and versions."""
    out = []
    for label, data in runs.items():
        versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items())
        seconds = data.get("seconds")
        took = f"{seconds / 60:.1f} minutes" if seconds else "time not recorded"
        out.append(
            f"- **{label}**: `{data.get('command') or 'state-rosetta bench'}` ({took}) on "
            f"{data['device']}; {versions}."
        )
    return "\n".join(out)


def _split_target(text: str) -> tuple[str, str]:
    statement, _, measured = text.rpartition(": ")
    return statement, measured


def targets_table(runs: Runs) -> str:
    """Each target, with what each run measured and whether it was met."""
    statements: dict[str, dict[str, str]] = {}
    for label, data in runs.items():
        for t in data.get("targets", []):
            statement, measured = _split_target(t["text"])
            verdict = ("met" if t["ok"] else "missed") if t["judged"] else "not judged"
            statements.setdefault(statement, {})[label] = f"{measured} ({verdict})"
    rows = [[s, *(cells.get(label, "-") for label in runs)] for s, cells in statements.items()]
    return markdown_table(["target", *runs], rows, right=len(runs) + 1)


def rows_table(runs: Runs) -> str:
    """Every measurement: median time and ratio to the baseline, per run."""
    keys: dict[tuple[str, str, str, str], dict[str, Mapping[str, Any]]] = {}
    for label, data in runs.items():
        for row in data["rows"]:
            keys.setdefault(_key(row), {})[label] = row
    head = ["model", "shape", "impl", "path"]
    for label in runs:
        head += [f"{label}: median us", "p10-p90 us", "x baseline"]
    rows = []
    for key, found in keys.items():
        cells = list(key)
        for label in runs:
            r = found.get(label)
            if r is None:
                cells += ["-", "-", "-"]
                continue
            cells += [
                f"{r['step_s_median'] * 1e6:.1f}",
                f"{r['step_s_p10'] * 1e6:.1f}-{r['step_s_p90'] * 1e6:.1f}",
                f"{r['ratio']:.2f}",
            ]
        rows.append(cells)
    return markdown_table(head, rows, right=4)


def fastest_idioms_table(runs: Runs) -> str:
    """Per workload and framework: its fastest own path (`native` or `native:NAME`)."""
    best: dict[tuple[str, str, str], dict[str, Mapping[str, Any]]] = {}
    for label, data in runs.items():
        for row in data["rows"]:
            if row["impl"] == "-" or not row["path"].startswith("native"):
                continue
            if row["baseline"].startswith(f"{row['impl']}/"):
                continue
            key = (row["model"], row["shape"], row["impl"])
            current = best.setdefault(key, {}).get(label)
            if current is None or row["ratio"] < current["ratio"]:
                best[key][label] = row
    head = ["model", "shape", "framework"]
    for label in runs:
        head += [f"{label}: fastest own path", "x baseline"]
    rows = []
    for key, found in best.items():
        cells = list(key)
        for label in runs:
            r = found.get(label)
            cells += ["-", "-"] if r is None else [f"`{r['path']}`", f"{r['ratio']:.2f}"]
        rows.append(cells)
    return markdown_table(head, rows, right=3)


def _number(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def depth_table(runs: Runs) -> str:
    """Per path: the fitted cost per layer (p10 and p90 fits beside it) and per leaf."""
    keys: dict[tuple[str, str, str], dict[str, Mapping[str, Any]]] = {}
    for label, data in runs.items():
        for fit in data.get("depth_fits", []):
            keys.setdefault((fit["size"], fit["impl"], fit["path"]), {})[label] = fit
    head = ["width", "impl", "path"]
    for label in runs:
        head += [f"{label}: us/layer", "p10-p90 fits", "us/leaf", "x base at L=1, 64"]
    rows = []
    for key, found in keys.items():
        cells = list(key)
        for label in runs:
            f = found.get(label)
            if f is None:
                cells += ["-"] * 4
                continue
            ends = f"{f['ratios'][0]:.2f}, {f['ratios'][-1]:.2f}"
            cells += [
                _number(f["per_layer_us"], 2),
                f"{f['per_layer_us_p10']:.2f}-{f['per_layer_us_p90']:.2f}",
                _number(f["per_leaf_us"], 2),
                ends,
            ]
        rows.append(cells)
    return markdown_table(head, rows, right=3)


def roofline_table(runs: Runs) -> str:
    """Large shapes: each harness step's bytes, speed, kernels and passes over the batch."""
    head = ["run", "model", "shape", "impl", "MB/step", "GB/s", "copy GB/s", "reduce GB/s"]
    head += ["kernels", "batch reads+writes"]
    rows = []
    for label, data in runs.items():
        bounds = {
            (r["model"], r["shape"], r["path"]): r["bandwidth_gbs"]
            for r in data["rows"]
            if r["impl"] == "-"
        }
        for r in data["rows"]:
            p = r.get("passes")
            if not p:
                continue
            achieved = p["bytes_accessed"] / r["step_s_median"] / 1e9
            rows.append(
                [
                    label,
                    r["model"],
                    r["shape"],
                    r["impl"],
                    f"{p['bytes_accessed'] / 1e6:.0f}",
                    f"{achieved:.1f}",
                    _number(bounds.get((r["model"], r["shape"], "copy"))),
                    _number(bounds.get((r["model"], r["shape"], "reduce"))),
                    str(p["kernels"]),
                    f"{p['batch_reads']}+{p['batch_writes']}",
                ]
            )
    return markdown_table(head, rows, right=4)


def framework_summary_table(runs: Runs) -> str:
    """Per framework, for the README: its fastest own idiom and its native loop at the first
    model's tiny shape, and the cost per layer (tiny width of a depth run) of those paths and
    of the harness fast path. Standard and depth runs may be given together."""
    tiny: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    fits: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
    for label, data in runs.items():
        measured = [r for r in data["rows"] if r["size"] == "tiny" and r["impl"] != "-"]
        if measured and measured[0].get("depth") is None:
            first = measured[0]["model"], measured[0]["shape"]
            tiny[label] = {}
            for r in measured:
                if (r["model"], r["shape"]) == first and r["path"].startswith("native"):
                    tiny[label].setdefault(r["impl"], []).append(r)
        for f in data.get("depth_fits", []):
            if f["size"] == "tiny":
                fits.setdefault(_release(label), {})[(f["impl"], f["path"])] = f
    standard = [label for label in runs if label in tiny]
    impls = list(dict.fromkeys(i for label in standard for i in tiny[label]))
    head = ["framework"]
    for label in standard:
        head += [f"{label}: fastest own idiom", "native loop", "us/layer: idiom, native, harness"]
    rows = []
    for impl in impls:
        cells = [impl]
        for label in standard:
            mine = tiny[label].get(impl, [])
            if not mine:
                cells += ["-", "-", "-"]
                continue
            best = min(mine, key=lambda r: r["ratio"])
            native = next((r for r in mine if r["path"] == "native"), None)
            per_layer = fits.get(_release(label), {})
            layer = [per_layer.get((impl, p)) for p in (best["path"], "native", "harness")]
            cells += [
                f"`{best['path']}` {best['ratio']:.2f}x",
                "-" if native is None else f"{native['ratio']:.2f}x",
                ", ".join("-" if f is None else f"{f['per_layer_us']:.0f}" for f in layer),
            ]
        rows.append(cells)
    return markdown_table(head, rows, right=1)


def _release(label: str) -> str:
    """A run's release set from its label (`"Python 3.11 (file.json)"` -> `"Python 3.11"`)."""
    return label.split(" (")[0]


def suite_lines(runs: Runs) -> str:
    """One line per recorded test-suite run (`ROSETTA_RECORD_SUITE`, see tests/conftest.py)."""
    out = []
    for label, data in runs.items():
        seconds = data["seconds"]
        outcomes = ", ".join(
            f"{data[k]} {k}" for k in ("passed", "skipped", "failed", "error") if data.get(k)
        )
        out.append(
            f"- **{label}**: `{data['command']}` took {seconds:.0f} s ({seconds / 60:.1f} "
            f"minutes) on {data['cpus']} CPU cores with {data['workers']} workers: {outcomes}."
        )
    return "\n".join(out)


def verdict_rows_table(runs: Runs) -> str:
    """The verdict bench (`bench --verdict --json`): each case's seconds and peak memory,
    plain training against the whole cross-validation, per run."""
    head = ["sweep", "case"]
    for label in runs:
        head += [f"{label}: plain s", "verdict s", "x plain", "plain MiB", "verdict MiB", "x plain"]
    cases: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for label, data in runs.items():
        for row in data["rows"]:
            cases.setdefault((row["sweep"], row["label"]), {})[label] = row
    rows = []
    for key, found in cases.items():
        cells = list(key)
        for label in runs:
            r = found.get(label)
            if r is None:
                cells += ["-"] * 6
                continue
            cells += [
                f"{r['plain_s']:.2f}",
                f"{r['verdict_s']:.2f}",
                f"{r['verdict_s'] / r['plain_s']:.2f}",
                f"{r['plain_rss'] / 2**20:.0f}",
                f"{r['verdict_rss'] / 2**20:.0f}",
                f"{r['verdict_rss'] / r['plain_rss']:.2f}",
            ]
        rows.append(cells)
    return markdown_table(head, rows, right=2)


BLOCKS: dict[str, Callable[[Runs], str]] = {
    "verdict": verdict_rows_table,
    "framework-summary": framework_summary_table,
    "suite": suite_lines,
    "runs": runs_header,
    "targets": targets_table,
    "rows": rows_table,
    "fastest-idioms": fastest_idioms_table,
    "depth": depth_table,
    "roofline": roofline_table,
}
"""The generated blocks a page may hold, by name."""
