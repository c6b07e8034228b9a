"""Per-arm metrics and lifts against control: 95% intervals and p-values by the delta method.

For a mean metric (start rate = share of users with >= 1 new title started, stream rate =
streams per user, shelf / organic starts per user) the relative lift is m_t / m_c - 1 with
variance var_t / (n_t m_c^2) + m_t^2 var_c / (n_c m_c^4); the p-value is the two-sided z-test
of m_t - m_c. A ratio metric (long-tail share = long-tail starts / starts, pooled over the arm's
users) uses the delta-method variance of a ratio of means.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

Z95 = float(norm.ppf(0.975))


def _mean_var(x: np.ndarray) -> tuple[float, float, int]:
    n = x.size
    return (float(x.mean()), float(x.var(ddof=1)) if n > 1 else 0.0, n)


def _ratio_var(num: np.ndarray, den: np.ndarray) -> tuple[float, float, int]:
    """(ratio of sums, variance of the ratio by the delta method, users)."""
    n = num.size
    d = float(den.mean()) if n else 0.0
    if n < 2 or d == 0.0:
        return (math.nan, math.nan, n)
    r = float(num.sum() / den.sum())
    cov = np.cov(num, den, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * d * d)
    return (r, float(var) * n, n)  # returned as a per-user variance: var / n is the ratio's


def compare(c: tuple[float, float, int], t: tuple[float, float, int]) -> dict:
    """Lift of treatment (mean, per-user variance, n) over control, its 95% CI and p-value."""
    mc, vc, nc = c
    mt, vt, nt = t
    se_diff = math.sqrt(vt / nt + vc / nc) if nt and nc else math.nan
    diff = mt - mc
    if not (se_diff > 0):
        p = 1.0 if diff == 0 or math.isnan(diff) else 0.0
    else:
        p = float(2.0 * norm.sf(abs(diff) / se_diff))
    if not (mc > 0) or math.isnan(mt):
        return {"lift": None, "ci95": None, "p": p, "diff": _num(diff)}
    lift = mt / mc - 1.0
    se = math.sqrt(vt / (nt * mc**2) + mt**2 * vc / (nc * mc**4))
    return {"lift": lift, "ci95": [lift - Z95 * se, lift + Z95 * se], "p": p, "diff": diff}


def _num(x: float) -> float | None:
    return None if math.isnan(x) else x


MEAN_METRICS = {
    "start_rate": "share of users with >= 1 new audiobook started",
    "stream_rate": "audiobook streams per user",
    "shelf_starts": "new audiobook starts from the shelf per user",
    "organic_starts": "new audiobook starts found organically per user",
}
RATIO_METRICS = {"longtail_share": "share of new starts in popularity tiers 3-5 of 5"}


def arm_metrics(outcomes: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, tuple[float, float, int]]:
    """(value, per-user variance, users) of every metric over the users in `mask`."""
    o = {k: v[mask].astype(np.float64) for k, v in outcomes.items()}
    out = {
        "start_rate": _mean_var((o["starts"] > 0).astype(np.float64)),
        "stream_rate": _mean_var(o["streams"]),
        "shelf_starts": _mean_var(o["shelf_starts"]),
        "organic_starts": _mean_var(o["starts"] - o["shelf_starts"]),
        "longtail_share": _ratio_var(o["longtail_starts"], o["starts"]),
    }
    return out


def lift_table(outcomes: dict[str, np.ndarray], arm: np.ndarray, arm_names: list[str]) -> dict:
    """{"arms": {name: {metric: value}}, "lifts": {name: {metric: {lift, ci95, p}}}} (arm 0 = control)."""
    per_arm = [arm_metrics(outcomes, arm == a) for a in range(len(arm_names))]
    arms = {
        name: {m: _num(v[0]) for m, v in stats.items()} | {"users": int((arm == a).sum())}
        for a, (name, stats) in enumerate(zip(arm_names, per_arm, strict=True))
    }
    lifts = {
        name: {m: compare(per_arm[0][m], per_arm[a][m]) for m in per_arm[0]}
        for a, name in enumerate(arm_names)
        if a > 0
    }
    return {"arms": arms, "lifts": lifts}
