"""Serving: real-time user vectors equal the batch path; recommend both types; CLI and bad input."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from toy_run import write_toy_run

from colisten.io import read_json
from colisten.retrieval.exact import RetrievalError
from colisten.twotower import stage as twotower_stage
from colisten.twotower.recommender import RecommendError, TwoTowerRecommender


def history_of(run, user):
    h = pd.read_parquet(run / "split/history.parquet")
    return h[h.user_id == user][["item_id", "event", "timestamp"]].to_dict("records")


def test_real_time_vector_equals_the_batch_path(trained_run, rec):
    run, _ = trained_run
    users = rec.known_users()[:25]
    batch = rec.user_vectors(users)
    cut = read_json(run / "split/split.json")["cut"]
    for row, user in enumerate(users):
        records = history_of(run, user)
        demo = rec.demographics(user)
        live = rec.user_vector_from_history(records, **demo)
        np.testing.assert_allclose(live, batch[row], atol=1e-5)
        # the same with an explicit as_of = cut (events are ISO strings here, as a client may send)
        iso = [
            {**r, "timestamp": pd.Timestamp(r["timestamp"], unit="s", tz="UTC").isoformat()} for r in records
        ]
        np.testing.assert_allclose(
            rec.user_vector_from_history(iso, as_of=cut, **demo), batch[row], atol=1e-5
        )


def test_new_users_get_vectors_and_unknown_items_are_ignored_and_reported(trained_run, rec):
    run, _ = trained_run
    records = history_of(run, rec.known_users()[3])
    noisy = records + [{"item_id": "not-an-item", "event": "stream", "timestamp": records[0]["timestamp"]}]
    assert rec.unknown_item_ids(noisy) == ["not-an-item"]
    v = rec.user_vector_from_history(noisy, age=40, country="SE")
    np.testing.assert_allclose(v, rec.user_vector_from_history(records, age=40, country="SE"), atol=1e-6)
    empty = rec.user_vector_from_history([], age=None, country="XX")  # no history, unknown country
    # the tower's unit vector and the popularity prior's constant 1
    assert v.shape == empty.shape == (33,) and np.isclose(np.linalg.norm(empty[:32]), 1) and empty[32] == 1
    # weak signals are used at inference (the setting is on in this model)
    preview = records + [{"item_id": rec.space.item_ids[0], "event": "preview", "timestamp": 0}]
    assert not np.allclose(rec.user_vector_from_history(preview), rec.user_vector_from_history(records))


def test_one_model_recommends_both_types_and_filters_consumed_items(trained_run, rec):
    run, _ = trained_run
    users = list(rec.known_users()[:40])
    h = pd.read_parquet(run / "split/history.parquet")
    for item_type in ("audiobook", "podcast"):
        ids, scores = rec.recommend(users, item_type, k=10)
        assert ids.shape == scores.shape == (40, 10)
        assert all(i.startswith(item_type[0]) for i in ids.ravel() if i is not None)
        assert np.all(np.diff(scores, axis=1) <= 1e-6)
        for user, row in zip(users, ids, strict=True):
            streamed = set(h.item_id[(h.user_id == user) & (h.event == "stream")])
            assert not streamed & set(row)
    # vectors + explicit consumed sets give the same answer as ids
    vectors = rec.user_vectors(users[:5])
    consumed = [set(h.item_id[(h.user_id == u) & (h.event == "stream")]) for u in users[:5]]
    by_vec, _ = rec.recommend(vectors, "audiobook", 10, consumed=consumed)
    by_id, _ = rec.recommend(users[:5], "audiobook", 10)
    np.testing.assert_array_equal(by_vec, by_id)


def test_bad_requests_are_clear_errors(rec):
    user = rec.known_users()[0]
    with pytest.raises(RecommendError, match="unknown user"):
        rec.recommend(["no-such-user"], "audiobook", 10)
    with pytest.raises(RecommendError, match="unknown item type 'movie'"):
        rec.recommend([user], "movie", 10)
    with pytest.raises(RetrievalError, match="at least 1"):
        rec.recommend([user], "audiobook", 0)
    with pytest.raises(RetrievalError, match="above the audiobook catalogue size"):
        rec.recommend([user], "audiobook", 10_000)


def test_index_command_reaches_recall_095_and_is_reloadable(trained_run, cli):
    run, _ = trained_run
    code, out, _ = cli("index", "--run", run.root)
    assert code == 0
    report = read_json(run / "index/index.json")
    for item_type in ("audiobook", "podcast"):
        assert report["types"][item_type]["recall@10"] >= 0.95
        assert (run / f"index/{item_type}.voy").exists()
        assert item_type in out
    assert run.manifest()["stages"]["index"]["recall@10"]["audiobook"] >= 0.95
    # the recommender uses the saved index once a catalogue reaches exact_below
    rec = TwoTowerRecommender.load(run)
    users = list(rec.known_users()[:30])
    exact, _ = rec.recommend(users, "podcast", 10)
    rec.retrieval.exact_below = 0
    approx, _ = rec.recommend(users, "podcast", 10)
    overlap = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert overlap >= 0.95 and rec._ann["podcast"] is not None


def test_recommend_command_prints_titles_scores_and_types(trained_run, rec, cli):
    run, _ = trained_run
    user = rec.known_users()[5]
    code, out, _ = cli("recommend", "--run", run.root, "--user", user, "--k", "3", "--type", "all")
    assert code == 0
    assert "audiobook recommendations" in out and "podcast recommendations" in out
    assert "on topic" in out and out.count("audiobook") >= 4


def test_export_covers_every_requested_user_exactly_once(trained_run, rec, tmp_path, cli):
    run, _ = trained_run
    wanted = list(rec.known_users()[:57])
    user_file = tmp_path / "users.txt"
    user_file.write_text("\n".join(wanted + wanted[:5]) + "\n")  # duplicates are written once
    out_file = tmp_path / "recs.parquet"
    code, _, _ = cli(
        "recommend",
        "--run",
        run.root,
        "--users",
        user_file,
        "--k",
        "7",
        "--out",
        out_file,
    )
    assert code == 0
    recs = pd.read_parquet(out_file)
    assert list(recs.columns) == ["user_id", "item_type", "item_id", "rank", "score"]
    assert set(recs.item_type) == {"audiobook"}  # default: the target type
    per_user = recs.groupby("user_id").size()
    assert sorted(per_user.index) == sorted(wanted) and (per_user == 7).all()
    assert not recs.duplicated(["user_id", "item_id"]).any()
    assert (recs.groupby("user_id")["rank"].apply(list) == [list(range(1, 8))] * len(wanted)).all()

    out_all = tmp_path / "all.parquet"
    code, _, _ = cli(
        "recommend",
        "--run",
        run.root,
        "--users",
        "all",
        "--k",
        "5",
        "--type",
        "all",
        "--out",
        out_all,
    )
    everyone = pd.read_parquet(out_all)
    assert code == 0 and everyone.user_id.nunique() == len(rec.known_users())
    assert (everyone.groupby(["user_id", "item_type"]).size() == 5).all()


def test_cli_bad_input_is_a_message_not_a_traceback(trained_run, rec, tmp_path, cli):
    run, _ = trained_run
    user = rec.known_users()[0]
    code, _, err = cli("recommend", "--run", run.root, "--user", "ghost")
    assert code == 2 and "unknown user" in err and "ghost" in err and "history" in err
    for k in ("0", "100000"):
        code, _, err = cli("recommend", "--run", run.root, "--user", user, "--k", k)
        assert code == 2 and "k=" in err and "Traceback" not in err
    bad = tmp_path / "users.txt"
    bad.write_text(f"{user}\nghost-1\nghost-2\n")
    code, _, err = cli("recommend", "--run", run.root, "--users", bad, "--out", tmp_path / "x.parquet")
    assert code == 2 and "2 unknown user(s)" in err and "ghost-1" in err
    assert not (tmp_path / "x.parquet").exists()


def test_cold_start_from_a_given_history_via_the_cli(trained_run, rec, tmp_path, cli):
    run, _ = trained_run
    records = history_of(run, rec.known_users()[7])[:10]
    records.append({"item_id": "mystery", "event": "stream", "timestamp": 1})
    hist = tmp_path / "history.json"
    hist.write_text(json.dumps(records))
    code, out, _ = cli(
        "recommend",
        "--run",
        run.root,
        "--user",
        "brand-new",
        "--history",
        hist,
        "--age",
        "33",
        "--country",
        "DE",
    )
    assert code == 0
    assert "ignored 1 unknown item id(s)" in out and "mystery" in out
    assert "audiobook recommendations for brand-new" in out


def test_baseline_without_hgnn_and_without_weak_signals(tmp_path, fast):
    run = write_toy_run(
        tmp_path / "run", n_users=120, seed=5, settings=fast(epochs=1, use_hgnn=False, use_weak_signals=False)
    )
    (run / "hgnn/item_embeddings.npy").unlink()  # the 2T baseline needs no HGNN stage
    twotower_stage.run(run, run.settings())
    rec = TwoTowerRecommender.load(run)
    assert rec.space.history_embedding_source == "text"
    # text only + 3 categorical (+ the learned item vector, twotower.id_dim)
    assert rec.model.item_tower.mlp[0].in_features == 32 + 3 * 16 + rec.model.id_dim
    records = history_of(run, rec.known_users()[0])
    weak = records + [{"item_id": rec.space.item_ids[0], "event": "follow", "timestamp": 0}]
    np.testing.assert_allclose(rec.user_vector_from_history(weak), rec.user_vector_from_history(records))


def test_one_call_real_time_request_and_malformed_histories(trained_run, rec):
    run, _ = trained_run
    user = rec.known_users()[9]
    records = history_of(run, user)
    streamed = {r["item_id"] for r in records if r["event"] == "stream"}
    ids, scores, unknown = rec.recommend_from_history(
        records + [{"item_id": "nope", "event": "stream", "timestamp": 5}],
        "podcast",
        10,
        **rec.demographics(user),
    )
    assert unknown == ["nope"] and not streamed & set(ids)
    want, _ = rec.recommend([user], "podcast", 10)
    np.testing.assert_array_equal(ids, want[0])  # same as the batch path for a known user
    # a plain list of played items (no event, no timestamp) is a stream history
    plain = [{"item_id": i} for i in sorted(streamed)]
    np.testing.assert_allclose(
        rec.user_vector_from_history(plain),
        rec.user_vector_from_history(
            [{"item_id": i, "event": "stream", "timestamp": 1} for i in sorted(streamed)]
        ),
        atol=1e-6,
    )
    with pytest.raises(RecommendError, match="record 2 has no timestamp"):
        rec.user_vector_from_history([{"item_id": "a", "timestamp": 1}, {"item_id": "b", "timestamp": None}])
    with pytest.raises(RecommendError, match="ISO-8601"):
        rec.user_vector_from_history([{"item_id": "a", "timestamp": "yesterday"}])
    with pytest.raises(RecommendError, match="list of records"):
        rec.user_vector_from_history(["a00001"])
    with pytest.raises(RecommendError, match="need an item_id"):
        rec.user_vector_from_history([{"id": "a00001"}])


@pytest.mark.parametrize("pooling", ["all", "per_type"])
def test_learned_item_vectors_train_and_serve_like_the_batch_path(tmp_path, fast, pooling):
    """twotower.id_dim: the user tower reads the user's streamed items, so the real-time path must
    hand it the same items as the batch path; items never trained on keep a zero vector. With
    id_pooling = per_type the loaded model still knows each item's type."""
    import torch

    from colisten.twotower.data import load_training_data

    settings = fast(id_dim=8, epochs=2, id_pooling=pooling)
    run = write_toy_run(tmp_path / "run", n_users=200, seed=1, settings=settings)
    twotower_stage.run(run, settings)
    rec = TwoTowerRecommender.load(run)
    assert rec.model.id_dim == 8 and rec.model.user_tower.mlp[0].in_features > 8
    if pooling == "per_type":
        types = load_training_data(run, settings).space.item_type_codes
        np.testing.assert_array_equal(rec.model.item_type_of.numpy(), types)
        assert len(np.unique(types)) == 2
    trained = np.unique(load_training_data(run, settings).train_pairs[:, 1])
    weights = rec.model.item_ids.weight.detach()
    untrained = np.setdiff1d(np.arange(weights.shape[0]), trained)
    assert torch.count_nonzero(weights[trained]) > 0
    assert untrained.size and torch.count_nonzero(weights[untrained]) == 0
    users = rec.known_users()[:10]
    batch = rec.user_vectors(users)
    for row, user in enumerate(users):
        live = rec.user_vector_from_history(history_of(run.root, user), **rec.demographics(user))
        np.testing.assert_allclose(live, batch[row], atol=1e-5)
    # the history matters: without it the same user gets another vector
    empty = rec.user_vector_from_history([], **rec.demographics(users[0]))
    assert not np.allclose(empty, batch[0], atol=1e-3)
    # the server's fast feature path gives the tower the same items
    from colisten.serve.state import load_bundle

    bundle = load_bundle(run.root)
    assert bundle.realtime is not None  # passed its check against the batch path at load
    for row, user in enumerate(users):
        query = bundle.known_user_query(bundle.users.index[user])
        np.testing.assert_allclose(bundle.user_vector(query), batch[row], atol=1e-5)


def test_an_ensemble_serves_the_mean_of_its_members_scores_on_every_path(tmp_path, fast):
    """twotower.ensemble = 2: two members (seeds 0 and 1) in RUN/twotower/members, one best.pt; the
    served inner product is the mean of the members' own scores (prior included), and batch,
    real-time and server paths agree; `--resume` continues each member."""
    import torch

    from colisten.twotower.data import load_training_data
    from colisten.twotower.model import load_model

    settings = fast(id_dim=8, epochs=2, ensemble=2)
    run = write_toy_run(tmp_path / "run", n_users=200, seed=1, settings=settings)
    summary = twotower_stage.run(run, settings)
    assert len(summary["best_epoch"]) == 2
    rec = TwoTowerRecommender.load(run)
    members = [load_model(run / "twotower/members" / str(j) / "best.pt") for j in (0, 1)]
    assert len(rec.model.members) == 2
    assert not torch.allclose(members[0].item_ids.weight, members[1].item_ids.weight)  # other seeds
    data = load_training_data(run, settings)
    users = rec.known_users()[:10]
    batch = rec.user_vectors(users)
    served = batch @ rec._item_vectors.T
    feats = rec.user_features(users)
    from colisten.twotower.model import item_vectors, user_vectors

    items = dataclasses.replace(data.items, log_popularity=data.serving_log_popularity)
    own = [user_vectors(m, feats) @ item_vectors(m, items).T for m in members]
    np.testing.assert_allclose(served, np.mean(own, axis=0), rtol=1e-4, atol=1e-5)
    for row, user in enumerate(users):
        live = rec.user_vector_from_history(history_of(run.root, user), **rec.demographics(user))
        np.testing.assert_allclose(live, batch[row], atol=1e-5)
    from colisten.serve.state import load_bundle

    bundle = load_bundle(run.root)
    assert type(bundle.tower).__name__ == "EnsembleUserTower"  # verified at load: the fast path serves
    for row, user in enumerate(users):
        query = bundle.known_user_query(bundle.users.index[user])
        np.testing.assert_allclose(bundle.user_vector(query), batch[row], atol=1e-5)
    # resume: both members already finished, so nothing retrains and the model is the same
    again = twotower_stage.run(run, settings, resume=True)
    assert again["best_epoch"] == summary["best_epoch"]
    np.testing.assert_array_equal(TwoTowerRecommender.load(run).user_vectors(users), batch)
