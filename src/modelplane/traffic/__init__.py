"""Safe model delivery: stable assignment of units to variants and the statistics that judge them.

::

    variants = [Variant("a", "fraud/3", 50), Variant("b", "fraud/4", 50)]
    chosen = choose("fraud-ab", "user-42", variants)        # same unit, same variant, always
    result = two_proportion_ztest(120, 2_000, 150, 2_000)
    min_n = min_sample_size_proportions(0.06, 0.02)
    decide(result, 2_000, 2_000, min_n)                     # "insufficient_data" until min_n

Both modules are pure: no I/O, no clock, no database.
"""

from __future__ import annotations

from modelplane.traffic.assignment import (
    DEFAULT_BUCKETS,
    Variant,
    bucket,
    choose,
    thompson_weights,
    validate_split,
)
from modelplane.traffic.stats import (
    ConfidenceInterval,
    SrmResult,
    TestResult,
    decide,
    mean_ci,
    min_sample_size_means,
    min_sample_size_proportions,
    proportion_ci,
    sample_ratio_mismatch,
    summary,
    summary_from_sums,
    two_proportion_ztest,
    welch_ttest,
)

__all__ = [
    "DEFAULT_BUCKETS",
    "ConfidenceInterval",
    "SrmResult",
    "TestResult",
    "Variant",
    "bucket",
    "choose",
    "decide",
    "mean_ci",
    "min_sample_size_means",
    "min_sample_size_proportions",
    "proportion_ci",
    "sample_ratio_mismatch",
    "summary",
    "summary_from_sums",
    "thompson_weights",
    "two_proportion_ztest",
    "validate_split",
    "welch_ttest",
]
