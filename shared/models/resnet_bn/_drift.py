"""`--defaults`: mlp-bn's drift report, each default judged against the ResNet's chaos.

mlp-bn's report reruns each framework with one BatchNorm default kept at a time and names a
default responsible when it moves the run beyond the aligned per-step bounds. Two correct
ResNet runs part by far more than those bounds after a relu flip (see `_tolerances`), so
every default would read responsible. Here a default is responsible when it moves the final
eval logits beyond what chaos alone moves them between correct runs: `SCAN_EVAL`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shared.core import AnalysisContext, AnalysisResult

from ..mlp_bn import drift_report as mlp_bn_drift_report
from ._tolerances import SCAN_EVAL


def drift_report(context: AnalysisContext) -> AnalysisResult | None:
    """mlp-bn's drift rows (all defaults, then one at a time), with `responsible` meaning
    eval logits more than `SCAN_EVAL.atol` from the aligned reference's. Only in
    `--defaults` mode."""
    result = mlp_bn_drift_report(context)
    if result is None:
        return None
    bound = SCAN_EVAL.atol
    payload: list[dict[str, Any]] = [
        d | {"responsible": d["knob"] != "all" and d["eval_max_abs"] > bound}
        for d in result.payload
    ]
    rows = [
        (*row[:-1], "" if d["knob"] == "all" else "yes" if d["responsible"] else "no")
        for row, d in zip(result.rows, payload, strict=True)
    ]
    notes = [
        f"responsible: eval logits more than {bound:g} from the aligned reference's (correct "
        "runs part by up to 0.57 after a relu flip); loss and running statistics part for "
        "every default, aligned or not",
        *(
            f"{d['impl']} drifts because of its default {d['default']}"
            for d in payload
            if d["responsible"]
        ),
    ]
    return replace(result, payload=payload, rows=rows, notes=notes)
