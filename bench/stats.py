"""Small statistics for the harness: percentiles (nearest rank) and medians of runs."""

from __future__ import annotations

import math
import statistics


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median_of_runs(runs: list[dict]) -> dict:
    """Per key, the median of the runs' numbers (keys missing from a run are skipped)."""
    keys = {key for run in runs for key, value in run.items() if isinstance(value, (int, float))}
    return {key: statistics.median(run[key] for run in runs if key in run) for key in sorted(keys)}
