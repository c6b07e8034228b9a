"""The harness: batch-size invariance, segments, filters, n/a handling, files and report."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from io import StringIO

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from colisten.cli import app
from colisten.config import Settings
from colisten.evaluate.baselines import (
    USER_NODE,
    HGNNMean,
    Popularity,
    TwoTower,
    UserItemVectors,
    tripartite_graph,
)
from colisten.evaluate.data import EvalData, EvaluationDataError, load_eval_data
from colisten.evaluate.harness import (
    EvaluateError,
    build_models,
    evaluate,
    evaluate_run,
    rank_users,
    resolve_models,
    segment_masks,
)
from colisten.evaluate.report import print_paper_tables
from colisten.rundir import RunError

FAST = ["Popularity", "LLM-KNN", "HGNN", "ALS"]


def settings(**evaluate) -> Settings:
    s = Settings()
    return s.model_copy(update={"evaluate": s.evaluate.model_copy(update=evaluate)})


def test_metrics_do_not_depend_on_batch_size(tiny_run):
    base = evaluate_run(tiny_run.root, settings(batch_users=1000, bootstrap=40), FAST)
    for batch in (1, 7):
        got = evaluate_run(tiny_run.root, settings(batch_users=batch, bootstrap=40), FAST)
        assert got == base
    # the memory cap shrinks batches the same way
    assert evaluate_run(tiny_run.root, settings(max_scores_per_batch=50, bootstrap=40), FAST) == base


def test_segments_partition_the_evaluated_users(tiny_run):
    s = settings()
    data = load_eval_data(tiny_run.root, s)
    seg_table = pd.read_parquet(tiny_run.root / "split/segments.parquet")
    for t in ("audiobook", "podcast"):
        users = data.targets[t].evaluated_users
        m = segment_masks(data, t, users)
        assert not (m["warm"] & m["cold"]).any()
        assert ((m["warm"] | m["cold"]) == m["all"]).all() and m["all"].all()
        assert m["warm"].any() and m["cold"].any()
        truth = seg_table[seg_table.item_type == t].set_index("user_id")["segment"]
        assert (truth.loc[data.user_ids[users[m["warm"]]]] == "warm").all()
        assert (truth.loc[data.user_ids[users[m["cold"]]]] == "cold").all()
    metrics = evaluate_run(tiny_run.root, s, ["Popularity"], bootstrap=0)
    for t in ("audiobook", "podcast"):
        pop = {seg: metrics[t][seg]["Popularity"]["users"] for seg in ("warm", "cold", "all")}
        assert pop["warm"] + pop["cold"] == pop["all"] > 0


def test_max_users_evaluates_a_seeded_sample_of_the_same_users_for_every_model(tiny_run):
    full = load_eval_data(tiny_run.root, settings())
    n = {t: full.targets[t].evaluated_users.size for t in ("audiobook", "podcast")}
    sampled = load_eval_data(tiny_run.root, settings(max_users=10))
    for t in n:
        tgt = sampled.targets[t]
        assert n[t] > 10 and tgt.evaluated_users.size == 10 and tgt.eligible_users == n[t]
        assert set(tgt.evaluated_users) <= set(full.targets[t].evaluated_users)
        # a sampled user keeps all their positives; the others have none
        kept = tgt.evaluated_users
        assert (tgt.positives[kept] != full.targets[t].positives[kept]).nnz == 0
        again = load_eval_data(tiny_run.root, settings(max_users=10)).targets[t].evaluated_users
        other = load_eval_data(tiny_run.root, settings(max_users=10, seed=1)).targets[t].evaluated_users
        assert np.array_equal(again, kept) and not np.array_equal(other, kept)
    metrics = evaluate_run(tiny_run.root, settings(max_users=10), ["Popularity", "ALS"], bootstrap=0)
    assert all(metrics[t]["all"][m]["users"] == 10 for t in n for m in ("Popularity", "ALS"))
    assert (
        load_eval_data(tiny_run.root, settings(max_users=10_000)).targets["audiobook"].eligible_users
        == n["audiobook"]
    )


def test_consumed_items_are_never_ranked_and_positives_are_new(tiny_run):
    s = settings()
    data = load_eval_data(tiny_run.root, s)
    t = data.targets["podcast"]
    lists = rank_users(data, Popularity().vectors(data, "podcast"), "podcast", s)
    for row, u in enumerate(lists.users):
        consumed = set(t.consumed[u].indices)
        assert consumed.isdisjoint(lists.top[row][lists.top[row] >= 0])
        assert consumed.isdisjoint(t.positives[u].indices)
    # a user who streamed an item in history and again in the hold-out is not credited for it
    hist = data.history_strong[:, t.start : t.start + t.n_items]
    held = data.holdout_strong[:, t.start : t.start + t.n_items]
    assert hist.multiply(held).nnz > 0  # the fixture has such repeats
    assert t.positives.multiply(hist).nnz == 0


def test_already_consumed_means_streamed_by_default_and_anything_with_any():
    items = pd.DataFrame({"item_id": ["a0", "a1", "a2"], "item_type": ["audiobook"] * 3})
    history = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a0", "a1"], "event": ["stream", "preview"]})
    holdout = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a1", "a2"], "event": ["stream", "stream"]})
    segments = pd.DataFrame({"user_id": ["u"], "item_type": ["audiobook"], "segment": ["warm"]})
    base = Settings().model_copy(
        update={"data": Settings().data.model_copy(update={"established_types": []})}
    )
    strong = EvalData.from_frames(items, history, holdout, segments, base).targets["audiobook"]
    assert strong.consumed[0].indices.tolist() == [0]
    assert strong.positives[0].indices.tolist() == [1, 2]  # the previewed title streamed later counts
    anyc = base.model_copy(update={"evaluate": base.evaluate.model_copy(update={"consumed": "any"})})
    any_t = EvalData.from_frames(items, history, holdout, segments, anyc).targets["audiobook"]
    assert any_t.consumed[0].indices.tolist() == [0, 1] and any_t.positives[0].indices.tolist() == [2]


def test_history_models_beat_popularity_and_llm_knn_is_na_for_cold(tiny_run):
    m = evaluate_run(tiny_run.root, settings(bootstrap=0), FAST)
    warm = m["audiobook"]["warm"]
    assert warm["HGNN"]["hr@10"] > warm["Popularity"]["hr@10"]
    assert warm["LLM-KNN"]["hr@10"] > warm["Popularity"]["hr@10"]
    for seg in ("cold", "all"):
        na = m["audiobook"][seg]["LLM-KNN"]
        assert na["status"] == "n/a" and "no audiobook history" in na["reason"]
        assert "hr@10" not in na
    # HGNN serves cold audiobook users through their podcasts
    assert m["audiobook"]["cold"]["HGNN"]["hr@10"] > 0


def test_missing_artifacts_say_which_command_to_run(tiny_run):
    (tiny_run.root / "hgnn/item_embeddings.npy").unlink()
    m = evaluate_run(tiny_run.root, settings(bootstrap=0), ["Popularity", "HGNN", "2T-HGNN"])
    for seg in ("warm", "cold", "all"):
        assert m["audiobook"][seg]["HGNN"]["status"] == "n/a"
        assert "train-hgnn" in m["audiobook"][seg]["HGNN"]["reason"]
        assert m["audiobook"][seg]["2T-HGNN"]["status"] == "n/a"
        assert "hr@10" in m["audiobook"][seg]["Popularity"]
    with pytest.raises(EvaluateError, match="unknown model"):
        build_models(tiny_run.root, Settings(), ["Popularity", "Random"])
    (tiny_run.root / "split/holdout.parquet").unlink()
    with pytest.raises(RunError, match="holdout.parquet"):
        evaluate_run(tiny_run.root, settings(), ["Popularity"])


def test_oracles_only_on_synthetic_worlds(tiny_run):
    # this run's data is fabricated, not a `colisten world` folder: no ground truth, no oracle rows
    names = [m.name for m in resolve_models(tiny_run.root, Settings(), None)]
    assert names == list(Settings().evaluate.baselines)


def test_unknown_item_in_split_is_reported_with_its_id(tiny_run):
    h = pd.read_parquet(tiny_run.root / "split/history.parquet")
    h.loc[0, "item_id"] = "ghost"
    with pytest.raises(EvaluationDataError, match="ghost"):
        EvalData.from_frames(
            pd.read_parquet(tiny_run.root / "data/items.parquet"),
            h,
            pd.read_parquet(tiny_run.root / "split/holdout.parquet"),
            pd.read_parquet(tiny_run.root / "split/segments.parquet"),
            Settings(),
        )


def test_metrics_json_shape_meta_and_self_contained_report(tiny_run):
    result = CliRunner().invoke(
        app, ["evaluate", "--run", str(tiny_run.root), "--models", ",".join(FAST), "--bootstrap", "30"]
    )
    assert result.exit_code == 0, result.output
    assert "Warm users, audiobooks" in result.output and "0.353" in result.output
    metrics = json.loads((tiny_run.root / "eval/metrics.json").read_text())
    assert set(metrics) == {"audiobook", "podcast"}  # top level: item types only
    for t in metrics:
        assert set(metrics[t]) == {"warm", "cold", "all"}
        for models in metrics[t].values():
            assert set(models) == set(FAST)
            for r in models.values():
                if r.get("status") == "n/a":
                    assert r["reason"]
                    continue
                for k in ("hr@10", "mrr@100", "coverage@100", "recall@10", "ndcg@10", "users"):
                    assert k in r
                assert [f"hr@10_tier{i}" in r for i in range(1, 6)] == [True] * 5
                for k in ("hr@10", "mrr@100", "recall@10", "ndcg@10"):
                    lo, hi = r["ci95"][k]
                    assert lo <= r[k] + 1e-12 and r[k] <= hi + 1e-12
                assert "coverage@100" not in r["ci95"]  # a bootstrap of a union is biased: no interval
    meta = json.loads((tiny_run.root / "eval/meta.json").read_text())
    assert meta["k_hit"] == 10 and meta["item_types"]["audiobook"]["items"] == 40
    manifest = json.loads((tiny_run.root / "manifest.json").read_text())
    assert "evaluate" in manifest["stages"]

    page = (tiny_run.root / "eval/report.html").read_text()
    imgs = _parse_images(page)
    assert len(imgs) >= 4  # three paper-table charts + the long-tail tiers chart
    for src in imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "0.353" in page and "Cold users, audiobooks" in page and 'src="http' not in page


def test_report_shows_curves_degrees_and_ablations(tiny_run):
    from colisten.evaluate.report import curve_series, write_report
    from colisten.graph.store import CoListeningGraph

    evaluate_run(tiny_run.root, settings(bootstrap=0), ["Popularity"])  # no files written by evaluate_run
    assert not (tiny_run.root / "eval/metrics.json").exists()
    CliRunner().invoke(app, ["evaluate", "--run", str(tiny_run.root), "--models", "Popularity,HGNN"])
    curve = [{"epoch": 1, "loss": 0.9, "val_mrr": 0.1}, {"epoch": 2, "loss": 0.5, "val_mrr": 0.2}]
    (tiny_run.root / "hgnn/curve.json").write_text(json.dumps(curve))
    (tiny_run.root / "twotower").mkdir()
    (tiny_run.root / "twotower/curve.json").write_text(json.dumps({"loss": [2.0, 1.0, 0.7]}))
    g = CoListeningGraph.from_undirected_edges(
        {"audiobook": 3, "podcast": 2}, {"audiobook__podcast": (np.array([0, 1]), np.array([1, 1]), None)}
    )
    g.save(tiny_run.root / "graph/csr")
    abl = {
        "w/o a-a edges": {"hr@10": 0.5, "mrr@100": 0.2, "coverage@100": 0.3},
        "w/o weak signals": {"status": "n/a", "reason": "not run"},
    }
    (tiny_run.root / "eval/ablations.json").write_text(json.dumps(abl))
    before = len(_parse_images((tiny_run.root / "eval/report.html").read_text()))
    page = write_report(tiny_run.root, "audiobook", "podcast").read_text()
    assert len(_parse_images(page)) == before + 3  # two curves + degree chart
    assert "w/o weak signals" in page and "not run" in page and "9.4%" in page  # paper a-a coverage
    assert curve_series(curve)["val_mrr"] == {"val_mrr": ([1.0, 2.0], [0.1, 0.2])}
    assert curve_series({"loss": [2.0, 1.0]})["loss"]["loss"] == ([1.0, 2.0], [2.0, 1.0])
    # per-type validation metrics (the two-tower curve) become one panel with a line per type
    nested = [{"epoch": 1, "val_hr@10": {"audiobook": 0.4, "podcast": 0.2}, "per_relation": {"a": {"x": 1}}}]
    assert curve_series(nested) == {"val_hr@10": {"audiobook": ([1.0], [0.4]), "podcast": ([1.0], [0.2])}}


def test_print_paper_tables_puts_paper_numbers_beside_ours(tiny_run):
    m = evaluate_run(tiny_run.root, settings(bootstrap=0), ["Popularity", "HGNN"])
    out = StringIO()
    print_paper_tables(m, Console(file=out, width=160))
    text = out.getvalue()
    assert "Warm users, audiobooks" in text and "Podcasts (all users)" in text
    ours = f"{m['audiobook']['warm']['HGNN']['hr@10']:.3f}"
    line = next(line for line in text.splitlines() if "HGNN " in line and "users" not in line)
    assert ours in line and "0.258" in line


class _FakeTwoTower:
    """Stands in for colisten.twotower's recommender: user i's vector picks item i % n."""

    def __init__(self, data: EvalData):
        self.data = data

    def user_vectors(self, user_ids):
        return np.eye(8, dtype=np.float32)[np.arange(len(user_ids)) % 8]

    def item_vectors(self, item_type):
        sl = self.data.type_slice(item_type)
        ids = self.data.item_ids[sl]
        return ids, np.eye(8, dtype=np.float32)[np.arange(ids.size) % 8]


def test_two_tower_adapter_ranks_with_the_recommenders_vectors(tiny_run):
    s = settings(bootstrap=0)
    data = load_eval_data(tiny_run.root, s)
    model = TwoTower("2T-HGNN", lambda _log: _FakeTwoTower(data))
    v = model.vectors(data, "audiobook")
    assert v.users.shape == (data.n_users, 8) and v.items.shape == (40, 8)
    metrics, meta = evaluate(data, [model, Popularity()], s)
    assert (
        metrics["audiobook"]["warm"]["2T-HGNN"]["users"]
        == metrics["audiobook"]["warm"]["Popularity"]["users"]
    )
    assert meta["models"]["2T-HGNN"]["audiobook"]["seconds"] >= 0
    bad = TwoTower(
        "2T",
        lambda _log: type(
            "R",
            (),
            {
                "user_vectors": _FakeTwoTower(data).user_vectors,
                "item_vectors": lambda self, t: (np.array(["x"]), np.ones((1, 8))),
            },
        )(),
    )
    metrics, _ = evaluate(data, [bad], s)
    assert metrics["audiobook"]["warm"]["2T"]["status"] == "n/a"


def test_ablation_variants_plug_in_as_model_objects(tiny_run):
    s = settings(bootstrap=0)
    data = load_eval_data(tiny_run.root, s)
    emb = np.load(tiny_run.root / "hgnn/item_embeddings.npy")
    rng = np.random.default_rng(0)
    variant = HGNNMean(rng.normal(size=emb.shape).astype(np.float32), name="random-embeddings")
    m = evaluate_run(tiny_run.root, s, ["HGNN", variant], data=data)
    warm = m["audiobook"]["warm"]
    assert set(warm) == {"HGNN", "random-embeddings"}
    assert warm["HGNN"]["hr@10"] > warm["random-embeddings"]["hr@10"]


def test_unservable_users_count_as_misses_and_are_reported(tiny_run):
    s = settings(bootstrap=0)
    data = load_eval_data(tiny_run.root, s)

    class Half:
        name = "half"

        def vectors(self, d, t):
            v = Popularity().vectors(d, t)
            servable = np.arange(d.n_users) % 2 == 0
            return UserItemVectors(v.users, v.items, servable)

    m, _ = evaluate(data, [Half(), Popularity()], s)
    r, p = m["podcast"]["all"]["half"], m["podcast"]["all"]["Popularity"]
    assert r["users"] == p["users"] and r["users_unserved"] > 0 and r["hr@10"] < p["hr@10"]


def test_tripartite_graph_links_users_to_their_items(tiny_run):
    data = load_eval_data(tiny_run.root, Settings())
    text = np.load(tiny_run.root / "content/text_embeddings.npy")
    graph, feats, has = tripartite_graph(data, text)
    assert set(graph.node_types) == {"audiobook", "podcast", USER_NODE}
    assert graph.num_nodes[USER_NODE] == data.n_users
    touched = data.history_touched()
    ab = data.type_slice("audiobook")
    assert graph.csr[(USER_NODE, "audiobook")].num_edges == touched[:, ab].nnz
    u = int(np.flatnonzero(has)[0])
    items = touched[u].indices
    assert np.allclose(feats[USER_NODE][u], text[items].mean(axis=0), atol=1e-6)
    assert not any(s == d for s, d in graph.csr)  # tripartite: no item-item or user-user edges


def _parse_images(page: str) -> list[str]:
    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.srcs: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.srcs.append(dict(attrs)["src"])

    p = P()
    p.feed(page)
    p.close()
    return p.srcs


def test_a_segment_without_evaluated_users_is_na_not_nan(tiny_run):
    seg = pd.read_parquet(tiny_run.root / "split/segments.parquet")
    seg.loc[seg.item_type == "podcast", "segment"] = "warm"
    seg.to_parquet(tiny_run.root / "split/segments.parquet")
    m = evaluate_run(tiny_run.root, settings(bootstrap=5), ["Popularity"])
    assert m["podcast"]["cold"]["Popularity"]["status"] == "n/a"
    assert m["podcast"]["warm"]["Popularity"]["users"] == m["podcast"]["all"]["Popularity"]["users"]
    json.dumps(m, allow_nan=False)  # valid JSON: no NaN anywhere


def test_hgnn_with_users_trains_on_the_tripartite_graph_and_serves_both_segments(tiny_run):
    s = Settings()
    s = s.model_copy(
        update={
            "hgnn": s.hgnn.model_copy(update={"hidden_dim": 16, "out_dim": 8, "max_edges_per_epoch": 256}),
            "evaluate": s.evaluate.model_copy(update={"hgnn_w_users_epochs": 1, "bootstrap": 0}),
        }
    )
    m = evaluate_run(tiny_run.root, s, ["HGNN-w-users"])
    for seg in ("warm", "cold", "all"):
        assert 0 <= m["audiobook"][seg]["HGNN-w-users"]["hr@10"] <= 1
    assert (tiny_run.root / "eval/hgnn_w_users/curve.json").exists()


def test_two_tower_baseline_is_trained_without_hgnn_on_the_same_split(tiny_run):
    s = Settings()
    s = s.model_copy(
        update={
            "twotower": s.twotower.model_copy(update={"epochs": 1, "tower_dims": [16, 8], "label_days": 30}),
            "evaluate": s.evaluate.model_copy(update={"bootstrap": 0}),
        }
    )
    m = evaluate_run(tiny_run.root, s, ["2T", "2T-HGNN"])
    assert m["audiobook"]["warm"]["2T"]["users"] > 0
    assert "train-2t" in m["audiobook"]["warm"]["2T-HGNN"]["reason"]  # no RUN/twotower yet
    base = tiny_run.root / "baselines/2T"
    manifest = json.loads((base / "manifest.json").read_text())
    assert manifest["config"]["twotower"]["use_hgnn"] is False
    assert (base / "split").resolve() == (tiny_run.root / "split").resolve()
    before = (base / "twotower/item_vectors.npy").stat().st_mtime_ns
    evaluate_run(tiny_run.root, s, ["2T"])  # reused, not retrained
    faster = s.model_copy(update={"twotower": s.twotower.model_copy(update={"device": "cpu"})})
    evaluate_run(tiny_run.root, faster, ["2T"])  # a speed-only setting does not retrain either
    assert (base / "twotower/item_vectors.npy").stat().st_mtime_ns == before
    # other events as weak signals change the features: retrained
    fewer = s.model_copy(update={"data": s.data.model_copy(update={"weak_events": ["follow"]})})
    evaluate_run(tiny_run.root, fewer, ["2T"])
    assert (base / "twotower/item_vectors.npy").stat().st_mtime_ns != before
    assert json.loads((base / "manifest.json").read_text())["config"]["data"]["weak_events"] == ["follow"]
    before = (base / "twotower/item_vectors.npy").stat().st_mtime_ns
    evaluate_run(tiny_run.root, s, ["2T"])  # back to the original settings: retrained again
    assert (base / "twotower/item_vectors.npy").stat().st_mtime_ns != before
    # other two-tower settings (here: two label windows) retrain it, so 2T matches 2T-HGNN's settings
    s2 = s.model_copy(update={"twotower": s.twotower.model_copy(update={"label_windows": 2})})
    evaluate_run(tiny_run.root, s2, ["2T"])
    assert (base / "twotower/item_vectors.npy").stat().st_mtime_ns != before
    assert json.loads((base / "twotower/features.json").read_text())["settings"]["label_windows"] == 2
    # once 2T-HGNN is trained, 2T follows the settings it was trained with, not the evaluate call's
    trained = s.twotower.model_copy(update={"label_windows": 4}).model_dump(mode="json")
    (tiny_run.root / "twotower").mkdir(exist_ok=True)
    (tiny_run.root / "twotower/features.json").write_text(json.dumps({"settings": trained}))
    evaluate_run(tiny_run.root, s, ["2T"])
    assert json.loads((base / "twotower/features.json").read_text())["settings"]["label_windows"] == 4
