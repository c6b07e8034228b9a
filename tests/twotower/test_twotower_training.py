"""Training: artifacts, learning, no leakage from the label window or the hold-out, resume."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from toy_run import write_toy_run

from colisten.io import read_json
from colisten.twotower import stage as twotower_stage
from colisten.twotower.data import TrainingError, label_fold, load_training_data, read_stage_inputs
from colisten.twotower.features import user_features
from colisten.twotower.model import load_model
from colisten.twotower.train import (
    candidate_log_counts,
    new_model,
    train_two_tower,
    validation_metrics,
)

QUIET = {"progress": False, "log": lambda *_: None}


def training_data(run, settings=None):
    """The stage's own training data, plus the history, inputs and split it was built from."""
    settings = settings or run.settings()
    data = load_training_data(run, settings)
    inputs = read_stage_inputs(run, settings.twotower)
    split = read_json(run / "split/split.json")
    history = pd.read_parquet(run / "split/history.parquet")
    return data, history, inputs, split


def test_training_writes_every_artifact_and_the_loss_goes_down(trained_run):
    run, summary = trained_run
    for name in ("checkpoint.pt", "best.pt", "features.json", "curve.json", "item_vectors.npy"):
        assert (run / "twotower" / name).exists(), name
    curve = read_json(run / "twotower/curve.json")
    assert len(curve) == summary["epochs"]
    # every epoch of the 8, or fewer where twotower.patience (2) epochs passed without a lower loss
    assert summary["epochs"] == 8 or summary["epochs"] - summary["best_epoch"] == 2
    assert curve[-1]["train_loss"] < curve[0]["train_loss"] - 0.1
    val = [r["val_loss"] for r in curve]
    assert min(val) < val[0] and summary["best_epoch"] == int(np.argmin(val)) + 1  # best.pt = lowest
    vectors = np.load(run / "twotower/item_vectors.npy")
    n_items = pq.read_metadata(run / "data/items.parquet").num_rows
    # the tower's unit vector, then the popularity prior's column: T * beta[type] * log(1 + users
    # who streamed the item in the whole history window), recomputed here from the history itself
    assert vectors.shape == (n_items, 33) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :32], axis=1), 1, rtol=1e-5)
    model = load_model(run / "twotower/best.pt")
    data, history, _, _ = training_data(run)
    streams = history.loc[history["event"].isin(run.settings().data.strong_events)]
    users = streams.groupby("item_id")["user_id"].nunique()
    log_pop = np.log1p(users.reindex(data.space.item_ids).fillna(0).to_numpy())
    beta = model.popularity_weight.detach().numpy()[data.items.categorical[:, 2]]
    np.testing.assert_allclose(vectors[:, 32], model.temperature * beta * log_pop, rtol=1e-5, atol=1e-6)
    meta = read_json(run / "twotower/features.json")
    assert meta["settings"]["tower_dims"] == [128, 64, 32] and meta["history_embedding_source"] == "hgnn"
    recorded = run.manifest()["stages"]["train-2t"]  # the stage records itself (issue 17 contract)
    assert recorded["best_epoch"] == summary["best_epoch"] and recorded["n_train_pairs"] > 0


def test_trained_model_beats_an_untrained_one_on_held_out_label_pairs(trained_run):
    run, _ = trained_run
    cfg = run.settings().twotower
    data, *_ = training_data(run)
    untrained = validation_metrics(new_model(data, cfg), data, cfg)
    trained = validation_metrics(load_model(run / "twotower/best.pt"), data, cfg)
    assert trained["val_loss"] < untrained["val_loss"] - 0.1
    assert set(trained["hr@10"]) == {"audiobook", "podcast"}  # one model serves both types
    assert np.mean(list(trained["hr@10"].values())) > np.mean(list(untrained["hr@10"].values()))


def test_no_leakage_features_come_only_from_events_before_the_label_window(trained_run):
    run, _ = trained_run
    data, history, inputs, split = training_data(run)
    label_start = split["cut"] - 14 * 86_400
    assert data.label_start == label_start
    before = history[history.timestamp < label_start]
    expected = user_features(before, inputs["users"], data.users.user_ids, data.space)
    np.testing.assert_array_equal(data.users.dense, expected.dense)

    # rewriting the label window (the answers) changes no feature
    window = history[history.timestamp >= label_start].copy()
    window["item_id"] = window["item_id"].sample(frac=1, random_state=0).to_numpy()
    shuffled = pd.concat([before, window])
    again = user_features(shuffled, inputs["users"], data.users.user_ids, data.space, as_of=label_start)
    np.testing.assert_array_equal(again.dense, data.users.dense)

    # every label is a label-window stream of an item not streamed before it
    ids = data.space.item_ids
    streams = history[history.event == "stream"]
    in_window = streams[streams.timestamp >= label_start]
    label_rows = set(zip(in_window.user_id, in_window.item_id, strict=True))
    early = streams[streams.timestamp < label_start]
    streamed_before = set(zip(early.user_id, early.item_id, strict=True))
    for u, i in np.r_[data.train_pairs, data.val_pairs][:300]:
        pair = (data.users.user_ids[u], ids[i])
        assert pair in label_rows and pair not in streamed_before
    assert not set(data.train_pairs[:, 0]) & set(data.val_pairs[:, 0])  # validation users are unseen


def test_training_never_reads_the_hold_out(tmp_path, fast):
    run = write_toy_run(tmp_path / "run", n_users=150, seed=1, settings=fast(epochs=1))
    (run / "split/holdout.parquet").unlink()
    (run / "data/interactions.parquet").unlink()  # hold-out rows live there too
    twotower_stage.run(run, run.settings(), **QUIET)
    assert (run / "twotower/item_vectors.npy").exists()


@pytest.mark.parametrize("negatives", [0, 16], ids=["in-batch", "sampled-negatives"])
def test_resume_continues_to_the_same_model_as_an_uninterrupted_run(tmp_path, fast, negatives):
    run = write_toy_run(tmp_path / "run", n_users=150, seed=2, settings=fast())
    data, *_ = training_data(run)
    cfg = run.settings().twotower.model_copy(update={"sampled_negatives": negatives})
    straight = tmp_path / "straight"
    train_two_tower(data, cfg.model_copy(update={"epochs": 3}), straight, **QUIET)
    parts = tmp_path / "parts"
    train_two_tower(data, cfg.model_copy(update={"epochs": 1}), parts, **QUIET)
    summary = train_two_tower(data, cfg.model_copy(update={"epochs": 3}), parts, resume=True, **QUIET)
    assert [r["epoch"] for r in summary["curve"]] == [1, 2, 3]
    a = torch.load(straight / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(parts / "checkpoint.pt", weights_only=False)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)

    with pytest.raises(TrainingError, match="temperature"):
        train_two_tower(
            data, cfg.model_copy(update={"epochs": 4, "temperature": 0.2}), parts, resume=True, **QUIET
        )


def test_label_window_longer_than_history_is_a_clear_error(tmp_path, fast):
    run = write_toy_run(tmp_path / "run", n_users=60, seed=3, settings=fast(label_days=90))
    with pytest.raises(TrainingError, match="label_days=90"):
        twotower_stage.run(run, run.settings(), **QUIET)


def test_several_label_windows_add_labels_without_leakage(trained_run, fast):
    run, _ = trained_run
    settings = fast(label_windows=3, label_min_feature_days=1)
    data, history, inputs, split = training_data(run, settings)
    single, *_ = training_data(run)
    day = 86_400
    assert data.n_windows == 3 and len(data.train_pairs) > len(single.train_pairs)
    # validation is the last window's held-out users, whatever the number of windows
    np.testing.assert_array_equal(
        single.users.user_ids[single.val_pairs[:, 0]], data.users.user_ids[data.val_pairs[:, 0]]
    )
    val_users = set(data.users.user_ids[data.val_pairs[:, 0]])
    assert not val_users & set(data.users.user_ids[data.train_pairs[:, 0]])  # in no window's training

    streams = history[history.event == "stream"]
    ids = data.space.item_ids
    row = 0
    for k in range(3):
        w_end = split["cut"] - k * 14 * day
        w_start = w_end - 14 * day
        before = history[history.timestamp < w_start]
        n_rows = len(np.unique(streams.user_id[(streams.timestamp >= w_start) & (streams.timestamp < w_end)]))
        rows = np.arange(row, row + n_rows)
        # features of window k's rows use only events before the window's start
        expected = user_features(before, inputs["users"], data.users.user_ids[rows], data.space)
        np.testing.assert_array_equal(data.users.dense[rows], expected.dense)
        # and every label of those rows is a stream inside window k of an item not streamed before it
        in_w = streams[(streams.timestamp >= w_start) & (streams.timestamp < w_end)]
        labels = set(zip(in_w.user_id, in_w.item_id, strict=True))
        old = streams[streams.timestamp < w_start]
        early = set(zip(old.user_id, old.item_id, strict=True))
        mine = data.train_pairs[(data.train_pairs[:, 0] >= row) & (data.train_pairs[:, 0] < row + n_rows)]
        assert len(mine)
        for u, i in mine:
            pair = (data.users.user_ids[u], ids[i])
            assert pair in labels and pair not in early
        row += n_rows
    assert row == len(data.users.user_ids)


def test_label_folds_label_every_history_stream_once_from_the_other_folds(trained_run, fast):
    run, _ = trained_run
    data, history, inputs, split = training_data(run, fast(label_folds=3))
    single, *_ = training_data(run)
    assert data.n_windows == 1 + 3
    # validation is untouched: the last window's held-out users, in no fold's training either
    np.testing.assert_array_equal(
        single.users.user_ids[single.val_pairs[:, 0]], data.users.user_ids[data.val_pairs[:, 0]]
    )
    val_users = set(data.users.user_ids[data.val_pairs[:, 0]])
    assert not val_users & set(data.users.user_ids[data.train_pairs[:, 0]])

    ids = data.space.item_ids
    fold_rows = np.flatnonzero(data.row_window >= 1)
    pairs = data.train_pairs[np.isin(data.train_pairs[:, 0], fold_rows)]
    labelled = [(data.users.user_ids[u], ids[i]) for u, i in pairs]
    # every stream of a training user is a label exactly once across the folds
    streams = history[(history.event == "stream") & ~history.user_id.isin(val_users)]
    assert sorted(labelled) == sorted(set(zip(streams.user_id, streams.item_id, strict=True)))
    # and a fold row's features never contain its own labels: they come from the other folds
    for k in range(1, 4):
        rows = np.flatnonzero(data.row_window == k)
        mine = pairs[np.isin(pairs[:, 0], rows)]
        for u in np.unique(mine[:, 0])[:20]:
            indptr, idx, *_ = data.users.history
            assert not set(idx[indptr[u] : indptr[u + 1]]) & set(mine[mine[:, 0] == u, 1])
        rest = history[label_fold(history, 3, 0) != k - 1]  # every event of the fold's pairs left out
        # a fold's labels come from any time: its rows weigh every history item alike
        expected = user_features(
            rest, inputs["users"], data.users.user_ids[rows], data.space, equal_recency=True
        )
        # users whose fold holds no label are not rows; the others' features are the rest's
        np.testing.assert_allclose(data.users.dense[rows], expected.dense, rtol=1e-5, atol=1e-6)


def test_log_frequency_weight_scales_the_correction(trained_run, fast):
    run, _ = trained_run
    full, *_ = training_data(run)
    half, *_ = training_data(run, fast(logq_weight=0.5))
    np.testing.assert_allclose(half.log_frequency, 0.5 * full.log_frequency, rtol=1e-6)


def test_sampled_negatives_correct_by_each_items_expected_count_in_a_batch(trained_run):
    """logQ with sampled negatives: log(batch * label share + negatives / n_items), weighted; without
    them the stored log share itself (the same softmax up to a constant)."""
    run, _ = trained_run
    data, *_ = training_data(run)
    cfg = run.settings().twotower
    assert candidate_log_counts(data, cfg) is data.log_frequency
    share = np.bincount(data.train_pairs[:, 1], minlength=data.space.n_items).astype(float)
    share = np.maximum(share, 1) / share.sum()
    for weight in (1.0, 0.5):
        mixed = cfg.model_copy(update={"sampled_negatives": 64, "logq_weight": weight})
        want = weight * np.log(cfg.batch_size * share + 64 / data.space.n_items)
        np.testing.assert_allclose(candidate_log_counts(data, mixed), want, rtol=1e-5)
    none = cfg.model_copy(update={"sampled_negatives": 64, "logq_weight": 0.0})
    np.testing.assert_array_equal(candidate_log_counts(data, none), 0.0)


def test_each_label_window_sees_only_the_popularity_before_it(trained_run):
    """The prior's popularity of a label window counts streams before that window only (no label
    leaks into its own prior); serving counts the whole history window."""
    run, _ = trained_run
    settings = run.settings().model_copy(deep=True)
    settings.twotower.label_windows = 2
    settings.twotower.label_min_feature_days = 1
    data, history, _, split = training_data(run, settings)
    assert data.n_windows == 2 and data.window_log_popularity.shape == (2, data.space.n_items)
    days = settings.twotower.label_days * 86_400
    streams = history.loc[history["event"].isin(settings.data.strong_events)]
    for k in range(2):
        before = streams.loc[streams["timestamp"] < split["cut"] - (k + 1) * days]
        n = before.groupby("item_id")["user_id"].nunique().reindex(data.space.item_ids).fillna(0)
        np.testing.assert_allclose(data.window_log_popularity[k], np.log1p(n.to_numpy()), rtol=1e-6)
    n_all = streams.groupby("item_id")["user_id"].nunique().reindex(data.space.item_ids).fillna(0)
    np.testing.assert_allclose(data.serving_log_popularity, np.log1p(n_all.to_numpy()), rtol=1e-6)
    # every user row is tagged with its window, in window order
    assert np.all(np.diff(data.row_window) >= 0) and set(data.row_window) == {0, 1}


def test_cold_copies_train_warm_users_as_cold_ones_too(trained_run, fast):
    """twotower.cold_copies: a second row per user with target-type history and target-type labels,
    its features as of the window without the target-type history, its labels the target-type ones."""
    run, _ = trained_run
    data, history, inputs, split = training_data(run, fast(cold_copies=True))
    plain, *_ = training_data(run)
    space, target = data.space, data.space.item_types.index("audiobook")
    n_real = len(plain.users.user_ids)
    copies = np.arange(n_real, len(data.users.user_ids))
    assert len(copies) and np.array_equal(data.users.dense[:n_real], plain.users.dense)
    # validation is unchanged: the same pairs, no copy among them
    np.testing.assert_array_equal(data.val_pairs, plain.val_pairs)
    # copy rows: features without target-type history, labels of the target type only
    label_start = split["cut"] - 14 * 86_400
    before = history[history.timestamp < label_start]
    books = space.item_ids[space.item_type_codes == target]
    stripped = before[~before.item_id.isin(books)]
    ids = data.users.user_ids[copies]
    expected = user_features(stripped, inputs["users"], ids, space)
    np.testing.assert_array_equal(data.users.dense[copies], expected.dense)
    indptr, items, *_ = data.users.history  # (+ recency weights)
    assert not np.isin(items[indptr[n_real] :], np.flatnonzero(space.item_type_codes == target)).any()
    mine = data.train_pairs[data.train_pairs[:, 0] >= n_real]
    assert len(mine) and (space.item_type_codes[mine[:, 1]] == target).all()
    # each copy's labels are its user's own target-type training labels
    real = {(data.users.user_ids[u], i) for u, i in plain.train_pairs if space.item_type_codes[i] == target}
    assert {(data.users.user_ids[u], i) for u, i in mine} <= real
    # and every copied user really had target-type history
    warm = set(before.loc[before.item_id.isin(books) & (before.event == "stream"), "user_id"])
    assert set(ids) <= warm


def test_same_type_negatives_drop_the_other_types_columns_from_each_rows_softmax(trained_run):
    """twotower.negatives_same_type: on a batch of one type the loss is unchanged; on a mixed
    batch every row loses the other type's columns from its denominator, so the loss falls."""
    from colisten.twotower.train import _Tensors

    run, _ = trained_run
    data, *_ = training_data(run)
    cfg = run.settings().twotower
    model = new_model(data, cfg).eval()
    kinds = data.space.item_type_codes[data.train_pairs[:, 1]]
    one = data.train_pairs[kinds == kinds[0]][:32]
    mixed = np.concatenate([one[:16], data.train_pairs[kinds != kinds[0]][:16]])
    with torch.no_grad():
        loss = {
            same: [
                float(
                    _Tensors(data, cfg.model_copy(update={"negatives_same_type": same}), "cpu").batch_loss(
                        model, b
                    )
                )
                for b in (one, mixed)
            ]
            for same in (False, True)
        }
    assert loss[True][0] == pytest.approx(loss[False][0], rel=1e-6)
    assert loss[True][1] < loss[False][1] - 1e-3


def test_weight_decay_shrinks_the_towers_and_zero_is_plain_adam(trained_run, tmp_path):
    """twotower.weight_decay > 0 trains with AdamW (smaller weights, same seed and batches); 0 keeps
    the paper's Adam, so the default model is what it was before the setting existed."""
    run, _ = trained_run
    data, *_ = training_data(run)
    cfg = run.settings().twotower.model_copy(update={"epochs": 2})
    norms = {}
    for wd in (0.0, 20.0):  # large: the toy run has few steps, and AdamW decays by lr * wd per step
        out = tmp_path / f"wd{wd}"
        train_two_tower(data, cfg.model_copy(update={"weight_decay": wd}), out, **QUIET)
        weights = torch.load(out / "checkpoint.pt", weights_only=False)["model"]
        norms[wd] = sum(float(w.float().norm()) for n, w in weights.items() if n.endswith("weight"))
    assert norms[20.0] < 0.9 * norms[0.0]
    for wd in (0.0, 20.0):
        ckpt = torch.load(tmp_path / f"wd{wd}" / "checkpoint.pt", weights_only=False)
        assert ckpt["optimizer"]["param_groups"][0]["weight_decay"] == wd


def test_training_data_from_the_coded_history_equals_the_one_from_plain_strings(trained_run, fast):
    """train-2t reads the history's ids as categoricals (read_coded_history); windows, folds,
    cold copies and recency weights come out exactly as from the same events as strings."""
    from colisten.twotower.data import read_coded_history

    run, _ = trained_run
    settings = fast(label_windows=2, label_folds=3, cold_copies=True, recency_half_life=5.0)
    coded = read_coded_history(run)
    assert all(isinstance(coded[c].dtype, pd.CategoricalDtype) for c in ("user_id", "item_id", "event"))
    data, history, _, _ = training_data(run, settings)
    assert not isinstance(history["item_id"].dtype, pd.CategoricalDtype)
    plain = load_training_data(run, settings, history[["user_id", "item_id", "event", "timestamp"]])
    assert data.n_windows == plain.n_windows == 5 and len(data.train_pairs) > 0
    for name in ("train_pairs", "val_pairs", "log_frequency", "window_log_popularity", "row_window"):
        np.testing.assert_array_equal(getattr(data, name), getattr(plain, name), err_msg=name)
    np.testing.assert_array_equal(data.users.user_ids, plain.users.user_ids)
    np.testing.assert_array_equal(data.users.dense[:], plain.users.dense[:])
    np.testing.assert_array_equal(data.users.categorical, plain.users.categorical)
    for mine, theirs in zip(
        (*data.users.history, *data.consumed), (*plain.users.history, *plain.consumed), strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)


def test_recency_weights_count_back_from_each_label_window_and_random_folds_weigh_alike(trained_run, fast):
    """recency_half_life: a window row's weights count back from the window's start (the next items
    follow the last ones); a random fold row predicts items from any time, so all its weights are 1."""
    run, _ = trained_run
    data, history, inputs, split = training_data(run, fast(label_folds=3, recency_half_life=5.0))
    indptr, items, weights = data.users.history
    row_of = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    in_folds = data.row_window[row_of] >= 1
    assert (weights[in_folds] == 1).all()
    window = np.flatnonzero(data.row_window == 0)
    expected = user_features(
        history, inputs["users"], data.users.user_ids[window], data.space, as_of=data.label_start
    )
    got = [w[indptr[r] : indptr[r + 1]] for r in window for w in [weights]]
    assert np.array_equal(np.concatenate(got), expected.history[2])
    assert (expected.history[2] < 1).any()


def test_training_stops_after_patience_epochs_without_a_lower_val_loss(trained_run, tmp_path, monkeypatch):
    """twotower.patience: once that many epochs pass without a lower validation loss, training ends
    (also right after a resume) and the best epoch's model is kept; 0 trains every epoch."""
    from colisten.twotower import train as train_module

    run, _ = trained_run
    data, *_ = training_data(run)
    losses = iter([3.0, 2.0, 2.5, 2.4, 1.0, 0.5] * 3)  # best at epoch 2, lower again only at 5

    def rising(model, data, cfg, device="cpu"):
        return {"val_loss": next(losses), "hr@10": {}}

    monkeypatch.setattr(train_module, "validation_metrics", rising)
    cfg = run.settings().twotower.model_copy(update={"epochs": 6, "patience": 2})
    lines = []
    summary = train_two_tower(data, cfg, tmp_path / "p2", progress=False, log=lines.append)
    assert [r["epoch"] for r in summary["curve"]] == [1, 2, 3, 4]
    assert summary["best_epoch"] == 2
    assert any("early stop after epoch 4" in line for line in lines)
    assert torch.load(tmp_path / "p2/best.pt", weights_only=False)["epoch"] == 2
    # a resume of a stopped run trains nothing more
    again = train_two_tower(data, cfg, tmp_path / "p2", resume=True, **QUIET)
    assert again["epochs"] == 4 and again["best_epoch"] == 2

    losses = iter([3.0, 2.0, 2.5, 2.4, 1.0, 0.5])
    every = train_two_tower(data, cfg.model_copy(update={"patience": 0}), tmp_path / "p0", **QUIET)
    assert len(every["curve"]) == 6 and every["best_epoch"] == 6


def test_an_ensembles_curve_averages_each_epoch_over_the_members_that_trained_it():
    """With twotower.patience, ensemble members may stop at different epochs: the mean curve runs to
    the longest member, each epoch averaged over the members that trained it."""
    from colisten.twotower.train import _mean_curve

    short = [{"epoch": 1, "val_loss": 2.0, "val_hr@10": {"audiobook": 0.2}}]
    long = [
        {"epoch": 1, "val_loss": 4.0, "val_hr@10": {"audiobook": 0.4}},
        {"epoch": 2, "val_loss": 3.0, "val_hr@10": {"audiobook": 0.5}},
    ]
    curve = _mean_curve([short, long])
    assert [r["epoch"] for r in curve] == [1, 2]
    assert [r["val_loss"] for r in curve] == pytest.approx([3.0, 3.0])
    assert [r["val_hr@10"]["audiobook"] for r in curve] == pytest.approx([0.3, 0.5])


def test_train_2t_ends_with_the_best_epoch_of_each_member_and_the_folder_written(tmp_path):
    """One line for `colisten train-2t`, in one process or from torchrun's rank 0."""
    one = twotower_stage.summary_line({"best_epoch": 3, "best_val_loss": 4.25}, tmp_path)
    assert one == f"two-tower model: best epoch 3 (validation loss 4.2500); wrote {tmp_path / 'twotower'}"
    three = twotower_stage.summary_line({"best_epoch": [2, 4, 2], "best_val_loss": 4.0}, tmp_path)
    assert "best epoch 2, 4, 2 (validation loss 4.0000)" in three


def test_rows_computed_per_batch_train_the_same_model_as_a_precomputed_table(tmp_path, fast):
    """twotower.user_table_mb = 0 keeps the training rows' dense inputs as a UserDense (computed
    batch by batch, memory following the history): the model equals the precomputed table's bit
    for bit, windows, folds, cold copies and recency means included."""
    from colisten.twotower.features import UserDense

    settings = fast(
        epochs=2, label_windows=2, label_folds=2, cold_copies=True, recency_half_life=4.0, recency_means=True
    )
    run = write_toy_run(tmp_path / "run", n_users=150, seed=3, settings=settings)
    models = {}
    for mb in (1024, 0):
        s = settings.model_copy(
            update={"twotower": settings.twotower.model_copy(update={"user_table_mb": mb})}
        )
        data = load_training_data(run, s)
        assert isinstance(data.users.dense, UserDense) == (mb == 0)
        train_two_tower(data, s.twotower, tmp_path / f"mb{mb}", **QUIET)
        models[mb] = torch.load(tmp_path / f"mb{mb}" / "checkpoint.pt", weights_only=False)["model"]
    for name, value in models[1024].items():
        assert torch.equal(value, models[0][name]), name


def test_ensemble_members_trained_in_worker_processes_equal_those_trained_one_after_another(
    tmp_path, fast, monkeypatch
):
    """[twotower] member_workers: members trained at once in spawned processes with one torch
    thread each, as this process has, are bit for bit the members trained in turn here (with other
    thread counts float rounding may differ); each keeps its own folder and the ensemble's best.pt
    holds them in seed order."""
    import psutil

    from colisten.twotower import train as train_module
    from colisten.twotower.train import member_workers, train_ensemble

    settings = fast(epochs=2, ensemble=2)
    run = write_toy_run(tmp_path / "run", n_users=120, seed=4, settings=settings)
    data = load_training_data(run, settings)
    lines: list[str] = []
    models = {}
    monkeypatch.setattr("colisten.device.usable_cores", lambda: 2)  # 2 workers x 1 thread
    for workers in (1, 2):
        cfg = settings.twotower.model_copy(update={"member_workers": workers})
        summary = train_ensemble(data, cfg, tmp_path / f"w{workers}", progress=False, log=lines.append)
        assert len(summary["best_epoch"]) == 2
        models[workers] = load_model(tmp_path / f"w{workers}" / "best.pt").state_dict()
        assert (tmp_path / f"w{workers}" / "members" / "1" / "best.pt").exists()
    assert any("2 members on 2 worker processes" in line for line in lines)
    assert models[1].keys() == models[2].keys()
    for name, value in models[1].items():
        assert torch.equal(value, models[2][name]), name

    # 'auto': every member at once on 2+ cores; one process for one core, one model, DDP or a GPU,
    # and only from AUTO_WORKERS_MIN_PAIRS training pairs (a toy run's members train in turn)
    auto, big = settings.twotower.model_copy(update={"ensemble": 3}), train_module.AUTO_WORKERS_MIN_PAIRS
    assert (
        member_workers(auto, big) == 3 and member_workers(auto.model_copy(update={"ensemble": 1}), big) == 1
    )
    assert member_workers(auto, big - 1) == 1
    # ... and while 3 copies of the training data take at most half the memory available
    free = psutil.virtual_memory().available
    assert member_workers(auto, big, free // 10) == 3 and member_workers(auto, big, free // 3) == 1
    assert train_module._nbytes(data) > data.users.categorical.nbytes + data.train_pairs.nbytes
    assert member_workers(auto.model_copy(update={"member_workers": 5}), 10) == 3
    monkeypatch.setattr("colisten.device.usable_cores", lambda: 1)
    assert member_workers(auto, big) == 1
    monkeypatch.setattr("colisten.device.usable_cores", lambda: 8)
    monkeypatch.setattr("colisten.ddp.rank_and_world", lambda: (0, 2))
    assert member_workers(auto, big) == 1
    monkeypatch.undo()
    monkeypatch.setattr(train_module, "resolve_device", lambda *_a: "cuda")
    assert member_workers(auto, big) == 1
    with pytest.raises(ValueError, match="member_workers"):
        fast(member_workers=0)
