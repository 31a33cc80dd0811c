"""Confidence intervals for figures measured on a sample: Wilson for a proportion, bootstrap otherwise.

Used by the KPI report (cost per 1,000 parts), the fine-tuning figures (top-1 on a held-out set,
AUROC) and their warnings. Pure numpy; 95 % by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion successes/n (sensible at 0 % and 100 %, unlike p ± z·se)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], np.ndarray],
    strata: Sequence[np.ndarray],
    boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of `statistic` over `boot` resamples drawn with replacement within each stratum.

    statistic maps a (boot, n) matrix of row indices to the (boot,) resampled values. One stratum
    (np.arange(n)) is the plain bootstrap; two (positives, negatives) keep both classes in every
    resample, which a ranking figure such as AUROC needs.
    """
    rng = np.random.default_rng(seed)
    draws = np.concatenate([np.asarray(s)[rng.integers(0, len(s), (boot, len(s)))] for s in strata], axis=1)
    values = np.asarray(statistic(draws), dtype=np.float64)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
