"""Tower shapes and the in-batch softmax loss with log-frequency correction."""

import math

import pytest
import torch

from colisten.config import TwoTowerConfig
from colisten.twotower.model import ItemTower, TwoTowerModel, UserTower, in_batch_softmax_loss


def test_default_towers_are_512_256_128_and_output_unit_vectors():
    dims = TwoTowerConfig().tower_dims
    assert dims == [512, 256, 128]
    user = UserTower(dense_dim=40, categorical_sizes=[8, 5], categorical_dim=16, dims=dims)
    item = ItemTower(dense_dim=30, categorical_sizes=[3, 4, 2], categorical_dim=16, dims=dims)
    assert [m.out_features for m in user.mlp if isinstance(m, torch.nn.Linear)] == dims
    u = user(torch.randn(7, 40), torch.tensor([[0, 0]] * 7))  # slot 0 = missing demographics
    v = item(torch.randn(7, 30), torch.tensor([[0, 3, 1]] * 7))
    assert u.shape == (7, 128) and v.shape == (7, 128)
    torch.testing.assert_close(u.norm(dim=1), torch.ones(7))
    assert (u @ v.T).abs().max() <= 1 + 1e-5  # dot product of unit vectors = cosine


def test_tower_sizes_are_configurable():
    m = TwoTowerModel(10, [3], 12, [2, 2], categorical_dim=4, tower_dims=[32, 8])
    assert m.user_tower.out_dim == 8 and m.item_tower.out_dim == 8
    assert m.config["tower_dims"] == [32, 8]


def test_loss_is_softmax_over_in_batch_items_minus_log_frequency():
    torch.manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(4, 6), dim=1)
    v = torch.nn.functional.normalize(torch.randn(4, 6), dim=1)
    items = torch.tensor([10, 11, 12, 13])
    log_q = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1]))
    got = in_batch_softmax_loss(u, v, items, log_q, temperature=0.1)
    logits = u @ v.T / 0.1 - log_q[None, :]
    want = -torch.log_softmax(logits, dim=1).diagonal().mean()
    torch.testing.assert_close(got, want)


def test_log_frequency_correction_stops_punishing_popular_items():
    # Same scores everywhere: without correction each row's loss is log(batch); the correction
    # makes the popular item (sampled often as a negative) cheaper to rank first.
    u = torch.ones(3, 2) / math.sqrt(2)
    v = torch.ones(3, 2) / math.sqrt(2)
    items = torch.tensor([0, 1, 2])
    flat = in_batch_softmax_loss(u, v, items, torch.zeros(3), 1.0)
    assert float(flat) == pytest.approx(math.log(3))
    popular_first = torch.log(torch.tensor([0.8, 0.1, 0.1]))
    per_row = -torch.log_softmax(torch.ones(3, 3) - popular_first[None, :], dim=1).diagonal()
    assert per_row[0] > per_row[1]  # the popular positive gets less credit
    torch.testing.assert_close(in_batch_softmax_loss(u, v, items, popular_first, 1.0), per_row.mean())


def test_duplicate_items_in_a_batch_are_not_negatives_of_each_other():
    torch.manual_seed(1)
    u = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    v = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    v[1] = v[0]
    items = torch.tensor([5, 5, 6])
    got = in_batch_softmax_loss(u, v, items, torch.zeros(3), 0.5)
    logits = u @ v.T / 0.5
    logits[0, 1] = logits[1, 0] = float("-inf")
    want = -torch.log_softmax(logits, dim=1).diagonal().mean()
    torch.testing.assert_close(got, want)


def test_sampled_negative_columns_join_the_softmax_except_a_rows_own_positive():
    torch.manual_seed(2)
    u = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    v = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    items = torch.tensor([5, 6, 7, 6, 9])  # columns 3-4 sampled; column 3 is row 1's own item
    log_q = torch.log(torch.tensor([0.3, 0.2, 0.1, 0.2, 0.05]))
    got = in_batch_softmax_loss(u, v, items, log_q, 0.5)
    logits = u @ v.T / 0.5 - log_q[None, :]
    logits[1, 3] = float("-inf")
    want = -torch.log_softmax(logits, dim=1).diagonal().mean()
    torch.testing.assert_close(got, want)


def test_excluded_columns_are_not_negatives_but_a_rows_positive_always_counts():
    torch.manual_seed(3)
    u = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    v = torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    item_type = torch.tensor([0, 1, 0])
    exclude = item_type[None, :] != item_type[:, None]
    got = in_batch_softmax_loss(
        u, v, torch.arange(3), torch.zeros(3), 0.5, exclude=exclude | torch.eye(3, dtype=bool)
    )
    logits = (u @ v.T / 0.5).masked_fill(exclude, float("-inf"))
    want = -torch.log_softmax(logits, dim=1).diagonal().mean()
    torch.testing.assert_close(got, want)
    assert float(-torch.log_softmax(logits, dim=1)[1, 1]) == pytest.approx(0.0, abs=1e-6)


def test_popularity_prior_adds_its_bias_to_the_logits_and_serves_as_one_more_dimension():
    torch.manual_seed(2)
    m = TwoTowerModel(10, [3], 12, [2, 2], 4, [16, 8], popularity_prior=True, n_item_types=2, temperature=0.1)
    with torch.no_grad():
        m.popularity_weight.copy_(torch.tensor([0.5, 2.0]))
    u = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    v = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    item_type = torch.tensor([0, 1, 1])
    log_pop = torch.tensor([1.0, 0.0, 3.0])
    bias = m.popularity_bias(log_pop, item_type)
    torch.testing.assert_close(bias, torch.tensor([0.5, 0.0, 6.0]))
    items = torch.tensor([0, 1, 2])
    got = in_batch_softmax_loss(u, v, items, torch.zeros(3), 0.1, bias[None, :].expand(3, 3))
    want = -torch.log_softmax(u @ v.T / 0.1 + bias[None, :], dim=1).diagonal().mean()
    torch.testing.assert_close(got, want)
    # inner product of the served vectors = temperature x the training logit: the same ranking
    served = m.serving_users(u) @ m.serving_items(v, item_type, log_pop).T
    torch.testing.assert_close(served, 0.1 * (u @ v.T / 0.1 + bias[None, :]))
    # without the prior (the paper) the vectors are served as they are
    plain = TwoTowerModel(10, [3], 12, [2, 2], 4, [16, 8])
    assert not hasattr(plain, "popularity_weight")
    assert plain.serving_users(u) is u and plain.serving_items(v, item_type, log_pop) is v


def test_per_type_pooling_keeps_one_mean_of_learned_vectors_per_item_type():
    """id_pooling = per_type: [mean over the row's type-0 items, mean over its type-1 items], zeros
    for a type the row has none of (a cold user's target-type half)."""
    model = TwoTowerModel(
        4, [3], 5, [3], 2, [8, 4], n_item_types=2, n_items=6, id_dim=3, id_pooling="per_type"
    )
    torch.nn.init.normal_(model.history_ids.weight)
    model.set_item_types(torch.tensor([0, 0, 0, 1, 1, 1]))
    w = model.history_ids.weight.detach()
    # rows: {0, 4, 1}, {3}, {}, {2, 5, 5}
    indices, offsets = torch.tensor([0, 4, 1, 3, 2, 5, 5]), torch.tensor([0, 3, 4, 4])
    out = model._history_vectors(indices, offsets, 4).detach()
    expected = torch.stack(
        [
            torch.cat([(w[0] + w[1]) / 2, w[4]]),
            torch.cat([torch.zeros(3), w[3]]),
            torch.zeros(6),
            torch.cat([w[2], w[5]]),
        ]
    )
    torch.testing.assert_close(out, expected)
    assert model.user_tower.mlp[0].in_features == 4 + 2 + 2 * 3  # dense, one categorical, 2 means
    with pytest.raises(ValueError, match="id_pooling"):
        TwoTowerModel(4, [3], 5, [3], 2, [8, 4], n_items=6, id_dim=3, id_pooling="max")


def test_ensemble_members_must_score_on_one_scale():
    from colisten.twotower.model import TwoTowerEnsemble

    def member(t):
        return TwoTowerModel(
            3, [2], 4, [2, 2, 2], 4, [8], popularity_prior=True, n_item_types=2, temperature=t
        )

    assert TwoTowerEnsemble([member(0.1), member(0.1)]).out_dim == 16
    with pytest.raises(ValueError, match="temperature"):
        TwoTowerEnsemble([member(0.1), member(0.2)])


def test_history_recency_adds_the_weighted_mean_of_the_same_learned_vectors():
    """[mean, sum(w * v) / sum(w)] per row; zeros for an empty history; the weights are required."""
    model = TwoTowerModel(4, [3], 5, [3], 2, [8, 4], n_items=6, id_dim=3, history_recency=True)
    torch.nn.init.normal_(model.history_ids.weight)
    w = model.history_ids.weight.detach()
    indices, offsets = torch.tensor([0, 4, 1, 3]), torch.tensor([0, 3, 3])
    weights = torch.tensor([1.0, 0.5, 0.25, 1.0])
    recent = model._recent_vectors(indices, offsets, weights, 3).detach()
    expected = torch.stack([(w[0] + 0.5 * w[4] + 0.25 * w[1]) / 1.75, torch.zeros(3), w[3]])
    torch.testing.assert_close(recent, expected)
    assert model.user_tower.mlp[0].in_features == 4 + 2 + 2 * 3
    dense, cat = torch.zeros(3, 4), torch.zeros(3, 1, dtype=torch.long)
    assert model.encode_users(dense, cat, (indices, offsets, weights)).shape == (3, 4)
    with pytest.raises(ValueError, match="recency weights"):
        model.encode_users(dense, cat, (indices, offsets))


def test_a_users_vector_does_not_depend_on_the_batch_it_is_scored_in():
    """user_vectors encodes fixed blocks of rows: a CPU matrix product rounds a row by how many rows
    it multiplies, so without them a user scored among 4 and among 300 would differ in the last bits
    (and a partitioned export would not equal the local one)."""
    import numpy as np

    from colisten.twotower.features import UserFeatures
    from colisten.twotower.model import user_vectors

    torch.manual_seed(0)
    model = TwoTowerModel(1200, [3], 5, [3], 2, [512, 128], n_items=50, id_dim=8, history_recency=True)
    rng = np.random.default_rng(0)
    n = 300
    lengths = rng.integers(0, 6, n)
    indptr = np.r_[0, np.cumsum(lengths)]
    history = (indptr, rng.integers(0, 50, indptr[-1]), rng.random(indptr[-1]).astype(np.float32))
    users = UserFeatures(
        np.arange(n).astype(object),
        rng.normal(size=(n, 1200)).astype(np.float32),
        rng.integers(0, 3, (n, 1)),
        history=history,
    )
    full = user_vectors(model, users)
    from colisten.twotower.data import select_rows

    for rows in ([0, 1, 2, 3], [7], list(range(100, 230))):
        assert np.array_equal(user_vectors(model, select_rows(users, np.array(rows))), full[rows])
