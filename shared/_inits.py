"""`compare_inits`: a port's own init against its reference's, leaf by aligned leaf.

By default a port starts from the reference's init (`check_port`), so that training is
compared from one point. A port's own initialisers are a porting decision of their own: the
frameworks' defaults differ (Haiku's `hk.Linear` draws a truncated normal whose standard
deviation is 0.88 / sqrt(fan_in); Flax's `lecun_normal` rescales it to 1 / sqrt(fan_in)).
Different keys give different values, so what is compared is each leaf's distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ._port import prepare

ALPHA = 1e-3
"""The chance, over the whole model, of calling one correct port's init different: each leaf's
two-sample Kolmogorov-Smirnov test runs at `ALPHA / leaves` (Bonferroni)."""

MIN_VALUES = 32
"""Below this many values a leaf's distribution is not tested (a KS test of so few values
cannot see a 12% change of scale); its numbers are still shown."""


@dataclass(frozen=True)
class InitRow:
    """One aligned leaf: both sides' shape, mean and standard deviation, and the verdict."""

    leaf: str
    shape: tuple[int, ...]
    ref_mean: float
    ref_std: float
    port_mean: float
    port_std: float
    p_value: float | None
    verdict: str  # "same", "differs" or "not tested"

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "shape": list(self.shape)}


@dataclass(frozen=True)
class InitComparison:
    """Every aligned leaf's row, and whether no leaf differs."""

    reference: str
    port: str
    rows: tuple[InitRow, ...]

    @property
    def agree(self) -> bool:
        return all(row.verdict != "differs" for row in self.rows)

    def differing(self) -> list[InitRow]:
        return [row for row in self.rows if row.verdict == "differs"]


def _row(leaf: str, ref: np.ndarray, port: np.ndarray, alpha: float) -> InitRow:
    a, b = ref.ravel().astype(np.float64), port.ravel().astype(np.float64)
    p_value: float | None = None
    if np.ptp(a) == 0 or np.ptp(b) == 0:  # a constant (zeros, ones): its value decides
        verdict = "same" if np.ptp(a) == np.ptp(b) == 0 and a[0] == b[0] else "differs"
    elif a.size < MIN_VALUES:
        verdict = "not tested"
    else:
        p_value = float(stats.ks_2samp(a, b).pvalue)
        verdict = "differs" if p_value < alpha else "same"
    return InitRow(
        leaf, ref.shape, a.mean(), a.std(), b.mean(), b.std(), p_value, verdict
    )  # fmt: skip


def compare_inits(
    reference: Any,
    port: Any,
    *,
    data: Any,
    inputs: Callable[[Any], Any] | None = None,
    seed: int = 0,
    mapping: Mapping[str, str] | None = None,
    random: bool = False,
) -> InitComparison:
    """Compare `port`'s own init with `reference`'s, leaf by aligned leaf.

    **Arguments:** as for [`check_port`][] (`data` gives the sample input; nothing trains).

    **Returns:** an [`InitComparison`][]: per leaf, both sides' mean and standard deviation,
    and "differs" where a constant differs or a two-sample Kolmogorov-Smirnov test rejects one
    distribution at `ALPHA` over the model.
    """
    pair = prepare(
        reference, port, data=data, inputs=inputs, steps=1, seed=seed, mapping=mapping,
        random=random,
    )  # fmt: skip
    ref_p, ref_s = pair.ref.to_canonical(*pair.ref_values)
    port_p, port_s = pair.ported.to_canonical(*pair.port_values)
    groups = {
        "params": (ref_p, pair.alignment.to_ref("params", port_p)),
        "state": (ref_s, pair.alignment.to_ref("state", port_s)),
    }
    alpha = ALPHA / max(1, len(pair.alignment.matches))
    rows = []
    for m in pair.alignment.matches:
        ref_values, port_values = groups[m.group]
        leaf = f"{m.group}.{m.ref}"
        rows.append(
            _row(leaf, np.asarray(ref_values[m.ref]), np.asarray(port_values[m.ref]), alpha)
        )
    return InitComparison(pair.ref.name, pair.ported.name, tuple(rows))


__all__ = ["ALPHA", "MIN_VALUES", "InitComparison", "InitRow", "compare_inits"]
