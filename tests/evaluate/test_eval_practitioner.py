"""The practitioner's baselines (EASE, ItemKNN, LightGCN): hand-checked weights, the harness's
filter and metrics shape, the EASE size guard, and LightGCN on a planted two-block world."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import colisten.evaluate.practitioner as practitioner
from colisten.config import Settings
from colisten.evaluate import stage as evaluate_stage
from colisten.evaluate.baselines import Popularity
from colisten.evaluate.data import EvalData, load_eval_data
from colisten.evaluate.harness import EvaluateError, build_models, evaluate, evaluate_run, rank_users
from colisten.evaluate.practitioner import (
    EASE,
    ItemKNN,
    LightGCN,
    ease_too_large_message,
    itemknn_weights,
    top_k_per_row,
    weighted_history,
)


def settings(**evaluate) -> Settings:
    s = Settings()
    return s.model_copy(update={"evaluate": s.evaluate.model_copy(update=evaluate)})


def hand_data(s: Settings) -> EvalData:
    """4 users x 4 items (2 audiobooks a0 a1, 2 podcasts p0 p1), history only as below."""
    items = pd.DataFrame(
        {"item_id": ["a0", "a1", "p0", "p1"], "item_type": ["audiobook"] * 2 + ["podcast"] * 2}
    )
    ev = [
        ("u0", "a0", "stream"),
        ("u0", "p0", "stream"),
        ("u0", "p0", "stream"),  # a repeat counts once: X is binary per event kind
        ("u1", "a0", "stream"),
        ("u1", "a1", "stream"),
        ("u1", "p1", "preview"),
        ("u2", "a1", "stream"),
        ("u2", "p0", "stream"),
        ("u2", "p1", "stream"),
        ("u3", "p0", "stream"),
        ("u3", "a0", "follow"),
    ]
    history = pd.DataFrame(ev, columns=["user_id", "item_id", "event"])
    holdout = pd.DataFrame([("u3", "a1", "stream"), ("u0", "p1", "stream")], columns=history.columns)
    segments = pd.DataFrame(
        [(u, t, "warm") for u in ("u0", "u1", "u2", "u3") for t in ("audiobook", "podcast")],
        columns=["user_id", "item_type", "segment"],
    )
    return EvalData.from_frames(items, history, holdout, segments, s)


# X of hand_data with weak events weighted 0.5 (rows u0..u3, columns a0 a1 p0 p1)
HAND_X = np.array(
    [
        [1.0, 0.0, 1.0, 0.0],
        [1.0, 1.0, 0.0, 0.5],
        [0.0, 1.0, 1.0, 1.0],
        [0.5, 0.0, 1.0, 0.0],
    ]
)


def test_ease_matches_per_item_ridge_regressions_by_hand():
    lam = 2.0
    s = settings(ease_lambda=lam, ease_weak_weight=0.5)
    data = hand_data(s)
    assert np.array_equal(weighted_history(data, 0.5).toarray(), HAND_X)
    # EASE's B, column j = ridge regression of item j on the other items (B_jj = 0 by constraint):
    # B[-j, j] = (X_-j' X_-j + lam I)^-1 X_-j' x_j. Steck's closed form must give the same.
    x = HAND_X
    expected = np.zeros((4, 4))
    for j in range(4):
        others = [i for i in range(4) if i != j]
        xo = x[:, others]
        expected[others, j] = np.linalg.solve(xo.T @ xo + lam * np.eye(3), xo.T @ x[:, j])
    model = EASE(s)
    _, b, has = model.fit(data)
    assert np.allclose(b, expected, atol=1e-12)
    assert np.all(np.diag(b) == 0.0)
    assert has.all()
    # scores through the model's vectors = X_u . B[:, i], per type
    for t, sl in (("audiobook", slice(0, 2)), ("podcast", slice(2, 4))):
        v = model.vectors(data, t)
        assert sp.issparse(v.users) and v.items.shape == (2, 4)
        scores = v.users @ v.items.T
        assert np.allclose(scores, x @ expected[:, sl], atol=1e-12)
    # and the harness ranks with those scores, consumed items removed
    lists = rank_users(data, model.vectors(data, "audiobook"), "audiobook", s, users=np.arange(4))
    hand = x @ expected[:, :2]
    for u in range(4):
        free = [i for i in range(2) if data.targets["audiobook"].consumed[u, i] == 0]
        want = sorted(free, key=lambda i: (-np.float32(hand[u, i]), i))
        assert lists.top[u, : len(want)].tolist() == want
        assert (lists.top[u, len(want) :] == -1).all()


def test_ease_literal_two_item_example():
    # two items always consumed together by 2 users: G = [[2+l, 2], [2, 2+l]], B_01 = 2 / (2 + l)
    x = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0]]))
    b = practitioner.ease_weights(x, 2.0)
    assert np.allclose(b, [[0.0, 0.5], [0.5, 0.0]])


def test_ease_size_guard_refuses_before_fitting_anything(tiny_run, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a model was fitted")

    monkeypatch.setattr(practitioner, "ease_weights", boom)
    monkeypatch.setattr(EASE, "fit", boom)
    monkeypatch.setattr("colisten.evaluate.baselines.ALS.fit", boom)
    with pytest.raises(EvaluateError) as e:
        build_models(tiny_run.root, settings(ease_max_items=69), ["ALS", "EASE"])
    msg = str(e.value)
    assert "70 items" in msg and "GB" in msg
    assert "[evaluate] baselines" in msg and "[evaluate] ease_max_items" in msg
    # the memory figure: 3 dense float64 copies of n x n
    assert "21.6 GB" in ease_too_large_message(30_000, 20_000)
    # at the limit it is accepted
    assert [m.name for m in build_models(tiny_run.root, settings(ease_max_items=70), ["EASE"])] == ["EASE"]


def test_itemknn_similarities_are_hand_cosines_and_top_k_keeps_the_largest():
    x = sp.csr_matrix(HAND_X)
    n = np.linalg.norm(HAND_X, axis=0)
    dots = HAND_X.T @ HAND_X
    full = itemknn_weights(x, neighbors=10, shrinkage=0.0).toarray()
    hand = dots / np.outer(n, n)
    np.fill_diagonal(hand, 0.0)
    assert np.allclose(full, hand)
    # e.g. a0 and p0: users u0 (1*1) and u3 (0.5*1) -> 1.5 / (sqrt(2.25) sqrt(3))
    assert np.isclose(full[0, 2], 1.5 / (np.sqrt(2.25) * np.sqrt(3.0)))
    shrunk = itemknn_weights(x, neighbors=10, shrinkage=1.0).toarray()
    assert np.isclose(shrunk[0, 2], 1.5 / (np.sqrt(2.25) * np.sqrt(3.0) + 1.0))
    # k = 1: each row keeps exactly its largest similarity
    top1 = itemknn_weights(x, neighbors=1, shrinkage=0.0).toarray()
    for i in range(4):
        assert np.count_nonzero(top1[i]) == 1
        assert top1[i].argmax() == hand[i].argmax() and np.isclose(top1[i].max(), hand[i].max())
    # k = 2 of 4 keeps the 2 largest; a tie at the cut keeps the lower index; zeros are never kept
    block = np.array([[0.1, 0.5, 0.3, 0.3, 0.0], [0.0, 0.0, 0.2, 0.0, 0.0]])
    assert top_k_per_row(block, 2).tolist() == [
        [False, True, True, False, False],
        [False, False, True, False, False],
    ]


def test_itemknn_never_recommends_a_consumed_item(tiny_run):
    s = settings(bootstrap=0)
    data = load_eval_data(tiny_run.root, s)
    (model,) = build_models(tiny_run.root, s, ["ItemKNN"])
    filtered = 0
    for t in ("audiobook", "podcast"):
        v = model.vectors(data, t)
        tgt = data.targets[t]
        lists = rank_users(data, v, t, s)
        raw = np.asarray((v.users[lists.users] @ v.items.T).todense())
        for row, u in enumerate(lists.users):
            consumed = set(tgt.consumed[u].indices.tolist())
            assert not consumed & set(lists.top[row][lists.top[row] >= 0].tolist())
            filtered += bool(consumed) and int(raw[row].argmax()) in consumed
    assert filtered > 0  # without the filter, consumed items would have topped some lists


def planted_data(s: Settings, n_per_group: int = 24, block: int = 12, seed: int = 0) -> EvalData:
    """Two user groups, each streaming only its own block of audiobooks and podcasts; two users
    with hold-out events only (no history). Group B is larger so that popularity favours block B."""
    rng = np.random.default_rng(seed)
    ids = [f"a{i:02d}" for i in range(2 * block)] + [f"p{i:02d}" for i in range(2 * block)]
    items = pd.DataFrame(
        {"item_id": ids, "item_type": ["audiobook"] * (2 * block) + ["podcast"] * (2 * block)}
    )
    hist, hold = [], []
    sizes = {"A": n_per_group, "B": 2 * n_per_group}
    for g, size in sizes.items():
        off = 0 if g == "A" else block
        for u in range(size):
            uid = f"{g}{u:03d}"
            books = rng.permutation(block)[:6] + off
            pods = rng.permutation(block)[:4] + off
            hist += [(uid, f"a{i:02d}", "stream") for i in books[:4]]
            hist += [(uid, f"p{i:02d}", "stream") for i in pods]
            hold += [(uid, f"a{i:02d}", "stream") for i in books[4:]]
    hold += [("Z000", "a00", "stream"), ("Z001", f"a{block:02d}", "stream")]
    cols = ["user_id", "item_id", "event"]
    history, holdout = pd.DataFrame(hist, columns=cols), pd.DataFrame(hold, columns=cols)
    users = sorted(set(history.user_id) | set(holdout.user_id))
    segments = pd.DataFrame(
        [(u, t, "cold" if u.startswith("Z") else "warm") for u in users for t in ("audiobook", "podcast")],
        columns=["user_id", "item_type", "segment"],
    )
    return EvalData.from_frames(items, history, holdout, segments, s)


LGCN_FAST = dict(lightgcn_epochs=30, lightgcn_batch_size=128, lightgcn_lr=0.02, lightgcn_dim=16, bootstrap=0)


def test_lightgcn_learns_planted_blocks_reproducibly_and_cannot_serve_users_without_history():
    # k = 8 = the unseen books of the user's own block (12 - 4 in history): a ranker that puts the
    # own block first always hits; Popularity puts the larger group B's books first, so group A's
    # users (a third) mostly miss
    s = settings(**LGCN_FAST, k_hit=8)
    data = planted_data(s)
    model = LightGCN(s)
    metrics, meta = evaluate(data, [model, Popularity()], s)
    warm = metrics["audiobook"]["warm"]
    assert warm["LightGCN"]["hr@8"] == 1.0
    assert warm["Popularity"]["hr@8"] < 0.8
    users, items, has = model.fit(data)
    # the user's own block's unseen books score above every book of the other block
    ab = data.type_slice("audiobook")
    scores = users @ items[ab].T
    block = 12
    for u in np.flatnonzero(has):
        own = slice(0, block) if data.user_ids[u].startswith("A") else slice(block, 2 * block)
        other = slice(block, 2 * block) if own.start == 0 else slice(0, block)
        assert scores[u, own].min() > scores[u, other].max()
    # users without history: unservable, counted as misses
    no_history = np.isin(data.user_ids, ["Z000", "Z001"])
    assert not has[no_history].any() and has[~no_history].all()
    cold = metrics["audiobook"]["cold"]["LightGCN"]
    assert cold["users"] == 2 and cold["users_unserved"] == 2 and cold["hr@8"] == 0.0
    # per-epoch loss recorded for the report, falling
    curve = meta["fit"]["LightGCN"]["curve"]
    assert len(curve) == 30 and curve[-1]["loss"] < curve[0]["loss"]
    # same seed, same embeddings bit for bit; another seed, others
    again = LightGCN(s).fit(data)
    assert np.array_equal(again[0], users) and np.array_equal(again[1], items)
    other = LightGCN(settings(**LGCN_FAST, seed=1)).fit(data)
    assert not np.array_equal(other[0], users)


def test_models_fit_once_per_eval_data_on_history_only(tiny_run):
    s = settings(bootstrap=0, lightgcn_epochs=2)
    data = load_eval_data(tiny_run.root, s)
    # a copy without any hold-out event gives the same vectors: nothing is read from the hold-out
    blind = EvalData(
        user_ids=data.user_ids,
        item_ids=data.item_ids,
        item_types=data.item_types,
        history_strong=data.history_strong,
        history_weak=data.history_weak,
        holdout_strong=sp.csr_matrix(data.holdout_strong.shape, dtype=np.float32),
        segments=data.segments,
        settings=s,
    )
    for cls in (EASE, ItemKNN, LightGCN):
        model = cls(s)
        first = model.fit(data)
        assert model.fit(data) is not None and model._fitted[0] == id(data)
        assert all(a is b for a, b in zip(model.fit(data), first, strict=True))  # cached
        other = cls(s).fit(blind)
        for a, b in zip(first, other, strict=True):
            a = a.toarray() if sp.issparse(a) else a
            b = b.toarray() if sp.issparse(b) else b
            assert np.array_equal(a, b)


def test_metrics_json_keeps_its_shape_with_every_baseline(tiny_run):
    s = settings(bootstrap=10, lightgcn_epochs=3, hgnn_w_users_epochs=1)
    names = list(s.evaluate.baselines)
    assert {"EASE", "ItemKNN", "LightGCN"} <= set(names)
    evaluate_stage.run(tiny_run, s)  # the default list: every model
    _check_shape(tiny_run.root, names)
    meta = json.loads((tiny_run.root / "eval/meta.json").read_text())
    for m in ("EASE", "ItemKNN", "LightGCN"):
        assert meta["fit"][m]["seconds"] >= 0
        assert set(meta["models"][m]) == {"audiobook", "podcast"}
    assert len(meta["fit"]["LightGCN"]["curve"]) == 3
    assert "LightGCN training" in (tiny_run.root / "eval/report.html").read_text()


def test_sparse_models_do_not_depend_on_batch_size(tiny_run):
    names = ["EASE", "ItemKNN"]
    base = evaluate_run(tiny_run.root, settings(batch_users=1000, bootstrap=20), names)
    assert evaluate_run(tiny_run.root, settings(batch_users=3, bootstrap=20), names) == base
    assert evaluate_run(tiny_run.root, settings(max_scores_per_batch=50, bootstrap=20), names) == base


def _check_shape(root, names):
    metrics = json.loads((root / "eval/metrics.json").read_text())
    assert set(metrics) == {"audiobook", "podcast"}
    keys = None
    for t in metrics:
        assert set(metrics[t]) == {"warm", "cold", "all"}
        for seg, rows in metrics[t].items():
            assert set(rows) == set(names), (t, seg)
            for name, r in rows.items():
                if r.get("status") == "n/a":
                    assert set(r) == {"status", "reason"} and r["reason"], (t, seg, name)
                    continue
                assert all(isinstance(v, (int, float, dict)) or v is None for v in r.values())
                keys = keys or set(r)
                assert set(r) == keys, (t, seg, name)
    for m in ("EASE", "ItemKNN", "LightGCN"):
        assert "hr@10" in metrics["audiobook"]["warm"][m]
