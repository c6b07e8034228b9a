"""Calibration statistics of a world, each beside the paper's observation (`colisten world stats`).

Measured from the written tables (what any user of the data would see), plus the ground truth
where the statistic needs a matched comparison (the weak-signal odds ratios).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from colisten.io import read_json, write_json_atomic
from colisten.world.simulate import lookup_sorted, run_starts
from colisten.world.truth import ITEM_TYPES, WorldError, WorldTruth, base_start_probability

PAPER_LIFT = {"follow": 1.18, "preview": 0.18, "intent_to_pay": 0.13}
HOLDOUT_DAYS = 14


def world_stats(
    world_dir: str | Path, seed: int = 0, pairs: int = 20_000, controls: int = 4, write: bool = True
) -> dict[str, Any]:
    """Compute the calibration statistics of a world and (by default) save DIR/world_stats.json.

    `pairs`: user pairs sampled for the podcast-similarity comparison; `controls`: matched control
    titles per weak signal for the odds ratios. Sampling uses `seed`, so the numbers are stable.
    """
    d = Path(world_dir)
    for name in ("items.parquet", "users.parquet", "interactions", "world.json"):
        if not (d / name).exists():
            raise WorldError(f"{d / name} is missing: is {d} a world written by `colisten world --out`?")
    meta = read_json(d / "world.json")
    truth = WorldTruth.load(d)
    rng = np.random.default_rng(seed)
    ev = _load_events(d, truth)
    n_users, n_items = truth.n_users, truth.item_ids.size
    n_ab = int((truth.item_type == 0).sum())
    start_s, end_s = int(meta["start_epoch_s"]), int(meta["end_epoch_s"])
    cut_s = end_s - min(HOLDOUT_DAYS, int(meta["days"]) - 1) * 86_400

    is_ab = truth.item_type[ev["item"]] == 0
    stream = ev["event"] == 0
    ab_stream = is_ab & stream
    pod_stream = ~is_ab & stream

    # --- concentration of audiobook listening (hours)
    hours_user = np.bincount(ev["user"][ab_stream], ev["duration_s"][ab_stream], minlength=n_users) / 3600
    hours_item = (
        np.bincount(ev["item"][ab_stream], ev["duration_s"][ab_stream], minlength=n_items)[:n_ab] / 3600
    )
    top_users = _top_share(hours_user[hours_user > 0], 0.25)
    top_items = _top_share(hours_item[hours_item > 0], 0.20)

    # --- audiobook listeners with podcast history before their first audiobook stream
    first_ab = np.full(n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_ab, ev["user"][ab_stream], ev["timestamp"][ab_stream])
    first_pod = np.full(n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_pod, ev["user"][pod_stream], ev["timestamp"][pod_stream])
    ab_listeners = first_ab < np.iinfo(np.int64).max
    share_pod_before = _mean(first_pod[ab_listeners] < first_ab[ab_listeners])
    share_pod_any = _mean(first_pod[ab_listeners] < np.iinfo(np.int64).max)

    # --- podcast-history similarity: users sharing an audiobook vs random pairs of listeners
    sim_shared, sim_random = _podcast_similarity(ev, ab_stream, pod_stream, n_users, n_items, pairs, rng)

    # --- weak signals: odds of a later stream of that title vs matched controls
    odds = {
        name: _weak_signal_odds_ratio(ev, truth, code, n_ab, end_s, controls, rng)
        for code, name in ((1, "follow"), (2, "preview"), (3, "intent_to_pay"))
    }

    # --- cold start and hold-out (global temporal split: last 14 days)
    hist = ev["timestamp"] < cut_s
    hist_ab_users = np.zeros(n_users, bool)
    hist_ab_users[ev["user"][hist & is_ab]] = True
    hist_pod_users = np.zeros(n_users, bool)
    hist_pod_users[ev["user"][hist & ~is_ab]] = True
    hist_users = hist_ab_users | hist_pod_users
    cold_share = _mean(~hist_ab_users[hist_users] & hist_pod_users[hist_users])
    hist_streamed = np.unique(ev["user"][hist & ab_stream] * n_ab + ev["item"][hist & ab_stream])
    ho = ~hist & ab_stream
    ho_keys = ev["user"][ho] * n_ab + ev["item"][ho]
    new = ~np.isin(ho_keys, hist_streamed)
    ho_users = np.unique(ev["user"][ho][new])
    warm_holdout = int(hist_ab_users[ho_users].sum())
    cold_holdout = int(ho_users.size - warm_holdout)
    new_titles = int((truth.arrays["item_published_day"][:n_ab] >= 0).sum())

    events_by_type = {
        f"{t}:{e}": int(np.sum((truth.item_type[ev["item"]] == c) & (ev["event"] == k)))
        for c, t in enumerate(ITEM_TYPES)
        for k, e in enumerate(("stream", "follow", "preview", "intent_to_pay"))
    }
    stats: dict[str, Any] = {
        "top25_users_share_of_audiobook_hours": top_users,
        "top20_audiobooks_share_of_audiobook_hours": top_items,
        "audiobook_listeners_with_podcast_before_share": share_pod_before,
        "audiobook_listeners_with_any_podcast_share": share_pod_any,
        "podcast_similarity_users_sharing_audiobook": sim_shared,
        "podcast_similarity_random_users": sim_random,
        "weak_signal_odds": odds,
        "users": n_users,
        "users_with_events": int(np.unique(ev["user"]).size),
        "audiobooks": n_ab,
        "podcasts": int(n_items - n_ab),
        "audiobooks_published_in_window": new_titles,
        "events": int(ev["user"].size),
        "events_by_type": {k: v for k, v in events_by_type.items() if v},
        "audiobook_listeners": int(ab_listeners.sum()),
        "cold_start_share": cold_share,
        "holdout_users_new_audiobook_warm": warm_holdout,
        "holdout_users_new_audiobook_cold": cold_holdout,
        "history_start_epoch_s": start_s,
        "cut_epoch_s": cut_s,
    }
    stats = _nan_to_none(stats)
    if write:
        write_json_atomic(d / "world_stats.json", stats)
    return stats


def _nan_to_none(x: Any) -> Any:
    """NaN (a statistic with no data, e.g. no audiobook listeners) becomes null in the JSON."""
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    if isinstance(x, float) and x != x:
        return None
    return x


def _load_events(d: Path, truth: WorldTruth) -> dict[str, np.ndarray]:
    table = pq.read_table(
        d / "interactions", columns=["user_id", "item_id", "event", "timestamp", "duration_s"]
    )
    users = _dictionary_index(table.column("user_id"))
    user_index = np.fromiter((int(u[1:]) for u in users[0]), np.int64, len(users[0]))[users[1]]
    items = _dictionary_index(table.column("item_id"))
    lookup = {v: i for i, v in enumerate(truth.item_ids.tolist())}
    item_index = np.fromiter((lookup[i] for i in items[0]), np.int64, len(items[0]))[items[1]]
    events = _dictionary_index(table.column("event"))
    code = {"stream": 0, "follow": 1, "preview": 2, "intent_to_pay": 3}
    event_code = np.asarray([code.get(e, -1) for e in events[0]], np.int8)[events[1]]
    duration = table.column("duration_s").to_numpy(zero_copy_only=False)
    return {
        "user": user_index,
        "item": item_index,
        "event": event_code,
        "timestamp": table.column("timestamp").to_numpy().astype(np.int64),
        "duration_s": np.nan_to_num(duration.astype(np.float64), nan=0.0),
    }


def _dictionary_index(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct values and each row's position among them (fast string -> int mapping)."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    return encoded.dictionary.to_pylist(), encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if np.size(values) else float("nan")


def _top_share(values: np.ndarray, top: float) -> float:
    if values.size == 0:
        return float("nan")
    v = np.sort(values)[::-1]
    k = max(1, int(round(top * v.size)))
    return float(v[:k].sum() / v.sum())


def _podcast_similarity(ev, ab_stream, pod_stream, n_users, n_items, pairs, rng) -> tuple[float, float]:
    """Mean cosine similarity of binary podcast-history vectors: pairs of users who streamed the
    same audiobook vs random pairs of audiobook listeners."""
    from scipy import sparse

    pod_keys = np.unique(ev["user"][pod_stream] * n_items + ev["item"][pod_stream])
    x = sparse.csr_matrix(
        (np.ones(pod_keys.size), (pod_keys // n_items, pod_keys % n_items)), shape=(n_users, n_items)
    )
    degree = np.asarray(x.sum(axis=1)).ravel()
    ab_keys = np.unique(ev["item"][ab_stream] * n_users + ev["user"][ab_stream])  # sorted by item
    if ab_keys.size < 2:
        return float("nan"), float("nan")
    ab_item, ab_user = ab_keys // n_users, ab_keys % n_users
    first = np.searchsorted(ab_item, ab_item, side="left")
    count = np.searchsorted(ab_item, ab_item, side="right") - first
    eligible = np.flatnonzero(count > 1)
    if eligible.size == 0:
        return float("nan"), float("nan")
    a = rng.choice(eligible, size=pairs)
    b = first[a] + rng.integers(0, count[a] - 1)
    b = b + (b >= a)  # another listener of the same title
    listeners = np.unique(ab_user)
    ra, rb = rng.choice(listeners, size=pairs), rng.choice(listeners, size=pairs)
    keep = ra != rb

    def cosine(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        dot = np.asarray(x[u].multiply(x[v]).sum(axis=1)).ravel()
        norm = np.sqrt(degree[u] * degree[v])
        return np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)

    return _mean(cosine(ab_user[a], ab_user[b])), _mean(cosine(ra[keep], rb[keep]))


def _weak_signal_odds_ratio(
    ev, truth: WorldTruth, code: int, n_ab: int, end_s: int, controls: int, rng
) -> dict:
    """Mantel-Haenszel odds ratio of a later stream of the signalled title vs matched controls.

    Signals: the first signal of this type on an audiobook the user had not streamed before, for
    (user, title) pairs with no other weak-signal type. Controls: for the same user and time,
    titles drawn from that user's true affinity, not signalled and not streamed before, each
    (user, title) pair once. Strata:
    20 quantile bins of the true probability of a later stream without any signal (from the user's
    rate, the days left and the pair's affinity: `truth.base_start_probability`), so signal and
    control pairs are compared at equal baseline odds. Outcome: any stream of the title after the
    signal, in the window. Pairs that cannot stream (users who never adopt) are left out.
    """
    is_ab = truth.item_type[ev["item"]] == 0
    weak = is_ab & (ev["event"] >= 1)
    keys = ev["user"] * n_ab + np.where(is_ab, ev["item"], 0)
    # pairs with any signal, and with signals of exactly this one type
    sig_keys, sig_codes = keys[weak], ev["event"][weak]
    order = np.lexsort((sig_codes, sig_keys))
    sk, sc = sig_keys[order], sig_codes[order]
    pair_start = run_starts(sk)
    pair_id = np.cumsum(pair_start) - 1
    n_types = np.bincount(pair_id, weights=pair_start | run_starts(sc))  # distinct types per pair
    single = n_types[pair_id] == 1
    this = single & (sc == code)
    if not this.any():
        return {"odds_ratio": float("nan"), "signals": 0}
    # first signal time of each single-type pair
    m = weak & (ev["event"] == code)
    k_m, t_m = keys[m], ev["timestamp"][m]
    o = np.lexsort((t_m, k_m))
    k_m, t_m = k_m[o], t_m[o]
    lead = run_starts(k_m)
    s_key, s_time = k_m[lead], t_m[lead]
    s_key_ok = np.isin(s_key, sk[this])
    s_key, s_time = s_key[s_key_ok], s_time[s_key_ok]
    any_signal = np.unique(sig_keys)

    # streams per pair: first and last time
    st = is_ab & (ev["event"] == 0)
    st_key, st_time = keys[st], ev["timestamp"][st]
    o = np.lexsort((st_time, st_key))
    st_key, st_time = st_key[o], st_time[o]
    f = run_starts(st_key)
    last = np.roll(f, -1)
    stream_key, first_stream, last_stream = st_key[f], st_time[f], st_time[last]

    def outcome(key: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found, pos = lookup_sorted(stream_key, key)
        pos = np.minimum(pos, max(stream_key.size - 1, 0))
        if stream_key.size == 0:
            return np.ones(key.size, bool), np.zeros(key.size, bool)
        before = found & (first_stream[pos] <= t)
        later = found & (last_stream[pos] > t)
        return ~before, later

    eligible, y_sig = outcome(s_key, s_time)
    s_key, s_time, y_sig = s_key[eligible], s_time[eligible], y_sig[eligible]
    s_user, s_item = s_key // n_ab, s_key % n_ab

    # matched controls: same user and time, titles drawn from the user's true affinity
    c_user = np.repeat(s_user, controls)
    c_time = np.repeat(s_time, controls)
    c_item = np.empty(c_user.size, np.int64)
    uniq, inv = np.unique(c_user, return_inverse=True)
    for lo in range(0, uniq.size, 2048):
        block = uniq[lo : lo + 2048]
        aff = truth.affinity(block, "audiobook")
        cum = np.cumsum(aff, axis=1)
        cum /= cum[:, -1:]
        sel = np.flatnonzero((inv >= lo) & (inv < lo + block.size))
        rows = inv[sel] - lo
        c_item[sel] = np.minimum((rng.random(sel.size)[:, None] > cum[rows]).sum(axis=1), aff.shape[1] - 1)
    c_key = c_user * n_ab + c_item
    ok = ~np.isin(c_key, any_signal)
    ok[np.setdiff1d(np.arange(c_key.size), np.unique(c_key, return_index=True)[1])] = False  # each pair once
    c_eligible, y_ctl = outcome(c_key, c_time)
    ok &= c_eligible
    c_user, c_item, c_time, y_ctl = c_user[ok], c_item[ok], c_time[ok], y_ctl[ok]

    days = float(truth.meta["days"])
    start_s = float(truth.meta["start_epoch_s"])
    rate, adoption = truth.arrays["user_book_rate"], truth.arrays["user_adoption_day"]
    published = truth.arrays["item_published_day"]

    def baseline(u: np.ndarray, i: np.ndarray, t: np.ndarray) -> np.ndarray:
        day = (t - start_s) / 86_400
        return base_start_probability(
            truth.pair_affinity(u, i), rate[u], adoption[u], day, days, published[i]
        )

    p_sig, p_ctl = baseline(s_user, s_item, s_time), baseline(c_user, c_item, c_time)
    s_ok, c_ok = p_sig > 0, p_ctl > 0
    bins = 20
    edges = (
        np.quantile(p_sig[s_ok], np.linspace(0, 1, bins + 1)[1:-1]) if s_ok.sum() >= 5 * bins else np.zeros(0)
    )
    mh = _mantel_haenszel(
        np.searchsorted(edges, p_sig[s_ok]),
        y_sig[s_ok],
        np.searchsorted(edges, p_ctl[c_ok]),
        y_ctl[c_ok],
        edges.size + 1,
    )
    return {
        **mh,
        "signals": int(s_ok.sum()),
        "signals_followed_by_stream": int(y_sig[s_ok].sum()),
        "controls": int(c_ok.sum()),
        "controls_followed_by_stream": int(y_ctl[c_ok].sum()),
        "mean_baseline_probability_signals": float(p_sig[s_ok].mean()) if s_ok.any() else float("nan"),
        "mean_baseline_probability_controls": float(p_ctl[c_ok].mean()) if c_ok.any() else float("nan"),
        "paper_lift": PAPER_LIFT[("follow", "preview", "intent_to_pay")[code - 1]],
    }


def _mantel_haenszel(s_stratum, y_sig, c_stratum, y_ctl, n_strata) -> dict:
    """Pooled odds ratio over strata with the Robins-Breslow-Greenland 95% interval."""
    a = np.bincount(s_stratum, y_sig, n_strata)  # signal, streamed
    b = np.bincount(s_stratum, ~y_sig, n_strata)  # signal, not streamed
    c = np.bincount(c_stratum, y_ctl, n_strata)  # control, streamed
    d = np.bincount(c_stratum, ~y_ctl, n_strata)  # control, not streamed
    n = a + b + c + d
    ok = n > 0
    a, b, c, d, n = a[ok], b[ok], c[ok], d[ok], n[ok]
    r, s = a * d / n, b * c / n
    big_r, big_s = r.sum(), s.sum()
    if big_r == 0 or big_s == 0:
        return {"odds_ratio": float("nan"), "ci95": [float("nan"), float("nan")]}
    p, q = (a + d) / n, (b + c) / n
    var = (
        (p * r).sum() / (2 * big_r**2)
        + (p * s + q * r).sum() / (2 * big_r * big_s)
        + (q * s).sum() / (2 * big_s**2)
    )
    odds = big_r / big_s
    half = 1.96 * np.sqrt(var)
    return {"odds_ratio": float(odds), "ci95": [float(odds * np.exp(-half)), float(odds * np.exp(half))]}


def stats_rows(stats: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(statistic, ours, paper) rows for printing."""
    odds = stats["weak_signal_odds"]

    def lift(name: str) -> str:
        o = odds[name]
        if not o.get("signals") or o.get("odds_ratio") is None or o.get("ci95", [None])[0] is None:
            return "n/a"
        lo, hi = o["ci95"]
        return f"{o['odds_ratio'] - 1:+.0%} (95% CI {lo - 1:+.0%} .. {hi - 1:+.0%}; n={o['signals']:,})"

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    def num(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    warm, cold = stats["holdout_users_new_audiobook_warm"], stats["holdout_users_new_audiobook_cold"]
    sizes = f"{stats['users']:,} / {stats['podcasts']:,} / {stats['audiobooks']:,}"
    rows = [
        (
            "top 25% of audiobook listeners: share of audiobook hours",
            pct(stats["top25_users_share_of_audiobook_hours"]),
            "≈ 75%",
        ),
        (
            "top 20% of audiobooks: share of audiobook hours",
            pct(stats["top20_audiobooks_share_of_audiobook_hours"]),
            "> 80%",
        ),
        (
            "audiobook listeners with a podcast stream before their first audiobook",
            pct(stats["audiobook_listeners_with_podcast_before_share"]),
            "> 70%",
        ),
        (
            "podcast-history cosine, pairs sharing an audiobook",
            num(stats["podcast_similarity_users_sharing_audiobook"]),
            "higher than random",
        ),
        (
            "podcast-history cosine, random pairs of audiobook listeners",
            num(stats["podcast_similarity_random_users"]),
            "",
        ),
        ("odds of a later stream after a follow", lift("follow"), "+118%"),
        ("odds of a later stream after a preview", lift("preview"), "+18%"),
        ("odds of a later stream after an intent_to_pay", lift("intent_to_pay"), "+13%"),
        ("users / podcasts / audiobooks", sizes, "10M / 3.5M+ / 250K+"),
        ("audiobooks published inside the window", f"{stats['audiobooks_published_in_window']:,}", ""),
        ("events", f"{stats['events']:,}", "800M+ streams"),
        ("cold-start share (history users with podcasts, no audiobook)", pct(stats["cold_start_share"]), ""),
        ("hold-out users with a new audiobook stream: warm / cold", f"{warm:,} / {cold:,}", ""),
    ]
    return rows
