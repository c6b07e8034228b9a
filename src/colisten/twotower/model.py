"""The two towers (PAPER.md §5), their in-batch softmax loss with log-frequency correction, and
inference: retrieval vectors of feature tables and a saved model (what serving and retrieval use;
they never import the training loop)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colisten.errors import ColistenError
from colisten.twotower.features import ItemFeatures, UserFeatures


class Tower(nn.Module):
    """Categorical embeddings + dense features -> MLP (ReLU between layers) -> L2-normalised vector.

    Normalising both towers makes the dot-product score a cosine, so one temperature fits every
    user and the same vectors work in an inner-product ANN index.
    """

    def __init__(
        self,
        dense_dim: int,
        categorical_sizes: list[int],
        categorical_dim: int,
        dims: list[int],
        extra_dim: int = 0,
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, categorical_dim) for n in categorical_sizes)
        layers: list[nn.Module] = []
        width = dense_dim + categorical_dim * len(categorical_sizes) + extra_dim
        for i, out in enumerate(dims):
            layers.append(nn.Linear(width, out))
            if i < len(dims) - 1:
                layers.append(nn.ReLU())
            width = out
        self.mlp = nn.Sequential(*layers)

    @property
    def out_dim(self) -> int:
        return self.mlp[-1].out_features

    def forward(
        self, dense: torch.Tensor, categorical: torch.Tensor, extra: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = [dense] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        if extra is not None:
            parts.append(extra)
        return F.normalize(self.mlp(torch.cat(parts, dim=1)), dim=1)


class UserTower(Tower):
    """Age bucket, country, mean history embeddings per item type and kind, counts, taste vector."""


class ItemTower(Tower):
    """Language, genre code, item type, text embedding, HGNN embedding."""


class TwoTowerModel(nn.Module):
    """User and item towers scored by dot product."""

    def __init__(
        self,
        user_dense_dim: int,
        user_categorical_sizes: list[int],
        item_dense_dim: int,
        item_categorical_sizes: list[int],
        categorical_dim: int,
        tower_dims: list[int],
        popularity_prior: bool = False,
        n_item_types: int = 1,
        temperature: float = 1.0,
        n_items: int = 0,
        id_dim: int = 0,
        id_pooling: str = "all",
        history_recency: bool = False,
    ) -> None:
        super().__init__()
        self.config = {
            "user_dense_dim": user_dense_dim,
            "user_categorical_sizes": list(user_categorical_sizes),
            "item_dense_dim": item_dense_dim,
            "item_categorical_sizes": list(item_categorical_sizes),
            "categorical_dim": categorical_dim,
            "tower_dims": list(tower_dims),
            "popularity_prior": popularity_prior,
            "n_item_types": n_item_types,
            "temperature": temperature,
            "n_items": n_items,
            "id_dim": id_dim,
            "id_pooling": id_pooling,
            "history_recency": history_recency,
        }
        if id_pooling not in ("all", "per_type"):
            raise ValueError(f"id_pooling must be 'all' or 'per_type', not {id_pooling!r}")
        self.n_item_types = n_item_types
        self.id_pooling = id_pooling
        history_dim = id_dim * (n_item_types if id_pooling == "per_type" else 1)
        # history_recency: beside the mean, the recency-weighted mean of the same learned vectors
        # (weights from features.recency_weights, a third array of the history CSR)
        self.history_recency = bool(history_recency and id_dim)
        history_dim += id_dim if self.history_recency else 0
        self.user_tower = UserTower(
            user_dense_dim, user_categorical_sizes, categorical_dim, tower_dims, extra_dim=history_dim
        )
        self.item_tower = ItemTower(
            item_dense_dim, item_categorical_sizes, categorical_dim, tower_dims, extra_dim=id_dim
        )
        self.id_dim = id_dim
        if id_dim:
            if n_items <= 0:
                raise ValueError("id_dim needs n_items")
            # A learned vector per item, in the item tower, and the mean of the learned vectors of
            # the items a user streamed, in the user tower (FISM-style). The text / HGNN inputs
            # are fixed: without these the towers can only tell items apart by content, which
            # on real logs is far from enough (EASE and item-kNN win on item identity). Zero at
            # the start, so the model starts as the content-only one; an item never seen in
            # training keeps a zero vector and is scored by its content alone (cold items).
            self.item_ids = nn.Embedding(n_items, id_dim)
            self.history_ids = nn.EmbeddingBag(n_items, id_dim, mode="mean")
            nn.init.zeros_(self.item_ids.weight)
            nn.init.zeros_(self.history_ids.weight)
            if id_pooling == "per_type":
                # One mean per item type, side by side (as the dense features keep one HGNN mean
                # per type): in one mean over everything a user streamed, the few target-type
                # items are drowned by the many established-type ones, and a cold user's mean
                # is a different mixture from a warm user's. Filled by set_item_types.
                self.register_buffer("item_type_of", torch.zeros(n_items, dtype=torch.long))
        self.popularity_prior = popularity_prior
        self.temperature = temperature
        if popularity_prior:
            # beta per item type in score = cos(u, i) / T + beta * log(1 + users who streamed i).
            # The towers' outputs are unit vectors, so a cosine alone can hardly say "popular"; on
            # real logs popularity is much of what predicts the next item (Popularity beats an
            # unbiased two-tower model on MovieLens). Starts at 1: popularity as the prior.
            self.popularity_weight = nn.Parameter(torch.ones(n_item_types))

    @property
    def out_dim(self) -> int:
        """Size of the towers' vectors (before the popularity prior's serving dimension)."""
        return self.user_tower.out_dim

    def encode_users(
        self,
        dense: torch.Tensor,
        categorical: torch.Tensor,
        history: tuple[torch.Tensor, ...] | None = None,
    ) -> torch.Tensor:
        """User-tower vectors; `history` = (item indices, offsets[, recency weights]) of each row's
        streamed items, needed when id_dim > 0 (EmbeddingBag layout: row r's items are
        indices[offsets[r]:offsets[r+1]]); the weights when history_recency."""
        extra = None
        if self.id_dim:
            if history is None:
                raise ValueError("a model with id_dim > 0 needs the users' history")
            extra = self._history_vectors(history[0], history[1], len(dense))
            if self.history_recency:
                if len(history) < 3:
                    raise ValueError("a model with history_recency needs the history's recency weights")
                extra = torch.cat([extra, self._recent_vectors(*history[:3], len(dense))], dim=1)
        return self.user_tower(dense, categorical, extra)

    def _recent_vectors(
        self, indices: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor, n_rows: int
    ) -> torch.Tensor:
        """Recency-weighted mean learned vector of each row's items [n_rows, id_dim] (zeros if none)."""
        total = F.embedding_bag(
            indices, self.history_ids.weight, offsets, mode="sum", per_sample_weights=weights
        )
        row = _bag_rows(offsets, len(indices), n_rows)
        norm = torch.zeros(n_rows, dtype=weights.dtype, device=weights.device).index_add_(0, row, weights)
        return total / norm.clamp_min(1e-12)[:, None]

    def set_item_types(self, item_type_codes: torch.Tensor) -> None:
        """The type code of every item (global order), which per-type pooling groups by."""
        if self.id_pooling == "per_type":
            self.item_type_of.copy_(torch.as_tensor(item_type_codes, dtype=torch.long))

    def _history_vectors(self, indices: torch.Tensor, offsets: torch.Tensor, n_rows: int) -> torch.Tensor:
        """Mean learned vector of each row's items [n_rows, id_dim], or one mean per item type
        [n_rows, types * id_dim] (an empty group gives zeros)."""
        if self.id_pooling == "all":
            return self.history_ids(indices, offsets)
        n_types = self.n_item_types
        # one bag per (row, type)
        group = _bag_rows(offsets, len(indices), n_rows) * n_types + self.item_type_of[indices]
        order = torch.argsort(group, stable=True)
        sizes = torch.bincount(group, minlength=n_rows * n_types)
        means = self.history_ids(indices[order], torch.cumsum(sizes, 0) - sizes)
        return means.view(n_rows, n_types * self.id_dim)

    def encode_items(
        self, dense: torch.Tensor, categorical: torch.Tensor, item_index: torch.Tensor
    ) -> torch.Tensor:
        """Item-tower vectors of the items `item_index` (global indices)."""
        extra = self.item_ids(item_index) if self.id_dim else None
        return self.item_tower(dense, categorical, extra)

    def popularity_bias(self, log_popularity: torch.Tensor, item_type: torch.Tensor) -> torch.Tensor:
        """beta[type] * log-popularity, broadcast over log_popularity's leading axes."""
        return self.popularity_weight[item_type] * log_popularity

    def serving_users(self, user_vectors: torch.Tensor) -> torch.Tensor:
        """User vectors for inner-product retrieval: [u, 1] with the prior, else u."""
        if not self.popularity_prior:
            return user_vectors
        return torch.cat([user_vectors, user_vectors.new_ones(len(user_vectors), 1)], dim=1)

    def serving_items(
        self, item_vectors: torch.Tensor, item_type: torch.Tensor, log_popularity: torch.Tensor
    ) -> torch.Tensor:
        """Item vectors for inner-product retrieval: [v, T * bias] with the prior, else v, so that
        serving_users(u) . serving_items(v) = T * (training logit) ranks exactly like training."""
        if not self.popularity_prior:
            return item_vectors
        bias = self.temperature * self.popularity_bias(log_popularity, item_type)
        return torch.cat([item_vectors, bias[:, None]], dim=1)


class TwoTowerEnsemble(nn.Module):
    """Two-tower models trained alike but for their seed, served as one model by the mean of their
    scores (twotower.ensemble): one member's ranking varies with its seed about as much as a
    setting changes it, and averaging removes that variance. The mean is one inner product of
    concatenated vectors, [u_1 .. u_k] / k . [v_1 .. v_k] plus the mean prior, so retrieval, the
    ANN index and serving use it unchanged; it has the single model's interface.
    """

    def __init__(self, members: list[TwoTowerModel]) -> None:
        super().__init__()
        first = members[0]
        same = ("popularity_prior", "temperature", "id_dim", "n_item_types")
        for m in members[1:]:
            if any(m.config[k] != first.config[k] for k in same):
                raise ValueError(f"ensemble members must agree on {', '.join(same)}")
        self.members = nn.ModuleList(members)
        self.config = {"members": [m.config for m in members]}
        self.popularity_prior = first.popularity_prior
        self.temperature = first.temperature
        self.id_dim = first.id_dim

    @property
    def out_dim(self) -> int:
        return sum(m.out_dim for m in self.members)

    def encode_users(self, dense, categorical, history=None) -> torch.Tensor:
        k = len(self.members)
        return torch.cat([m.encode_users(dense, categorical, history) for m in self.members], dim=1) / k

    def encode_items(self, dense, categorical, item_index) -> torch.Tensor:
        return torch.cat([m.encode_items(dense, categorical, item_index) for m in self.members], dim=1)

    def popularity_bias(self, log_popularity: torch.Tensor, item_type: torch.Tensor) -> torch.Tensor:
        return torch.stack([m.popularity_bias(log_popularity, item_type) for m in self.members]).mean(0)

    serving_users = TwoTowerModel.serving_users
    serving_items = TwoTowerModel.serving_items


def in_batch_softmax_loss(
    user_vectors: torch.Tensor,
    item_vectors: torch.Tensor,
    item_index: torch.Tensor,
    log_frequency: torch.Tensor,
    temperature: float,
    bias: torch.Tensor | None = None,
    exclude: torch.Tensor | None = None,
    first_row: int = 0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Softmax over the batch's items for each (user, positive item) row, corrected by log frequency.

    The paper's Eq. 5 weights in-batch negatives by inverse item frequency: popular items appear
    as negatives in many batches and would otherwise be pushed down for everyone. We read it as
    the standard sampled-softmax correction (Yi et al., RecSys 2019): subtract log p(item) from
    every logit, p being the item's share of training labels, i.e. its chance to be drawn into
    a batch. Other rows with the same item are not negatives (masked out). `bias` [rows, items]:
    the popularity prior of each column's item for each row's user (as of that row's window).

    Column r < rows is row r's positive; columns past the rows are extra sampled negatives
    (mixed negative sampling), `log_frequency` then being each column's log expected count.
    `exclude` [rows, columns]: further columns that are not negatives of a row (e.g. another type).

    `first_row`: the rows are the batch's rows first_row, first_row + 1, ... (one DDP rank's slice
    of a global batch whose item vectors were all-gathered): row r's positive is column
    first_row + r. `reduction` as in F.cross_entropy ("sum" lets the ranks' shares add up).
    """
    rows = len(user_vectors)
    logits = user_vectors @ item_vectors.T / temperature - log_frequency[None, :]
    if bias is not None:
        logits = logits + bias
    same = item_index[None, :] == item_index[first_row : first_row + rows, None]
    if exclude is not None:
        same |= exclude
    own = torch.arange(rows, device=logits.device)
    same[own, own + first_row] = False  # a row's own positive is never masked
    logits = logits.masked_fill(same, float("-inf"))
    return F.cross_entropy(logits, own + first_row, reduction=reduction)


def _bag_rows(offsets: torch.Tensor, n_indices: int, n_rows: int) -> torch.Tensor:
    """The row (bag) of each entry of an EmbeddingBag input given its offsets."""
    lengths = torch.diff(offsets, append=offsets.new_tensor([n_indices]))
    return torch.repeat_interleave(torch.arange(n_rows, device=offsets.device), lengths)


# --- inference: retrieval vectors of whole feature tables, and a saved model -----------------------
def item_vectors(model, items: ItemFeatures, device: str = "cpu") -> np.ndarray:
    """Retrieval vectors of every item (float32 [n_items, d (+1 with the popularity prior)])."""

    def encode(rows: np.ndarray):
        dense = torch.from_numpy(items.dense[rows]).to(device)
        categorical = torch.from_numpy(items.categorical[rows]).to(device)
        return model.encode_items(dense, categorical, torch.from_numpy(rows).to(device))

    v = _in_batches(model, encode, len(items.dense))
    if not model.popularity_prior:
        return v
    if items.log_popularity is None:
        raise ColistenError("the model has a popularity prior but the item features carry no popularity")
    with torch.inference_mode():
        out = model.serving_items(
            torch.from_numpy(v).to(device),
            torch.from_numpy(items.categorical[:, 2]).to(device),
            torch.from_numpy(items.log_popularity).to(device),
        )
    return out.cpu().numpy().astype(np.float32)


def user_vectors(model, users: UserFeatures, device: str = "cpu") -> np.ndarray:
    """Retrieval vectors of every row of `users` (float32 [n, d (+1 with the popularity prior)])."""
    history = None
    if model.id_dim:
        if users.history is None:
            raise ColistenError("a model with learned item vectors (id_dim > 0) needs the users' history")
        history = tuple(torch.from_numpy(a).to(device) for a in users.history)

    def encode(rows: np.ndarray):
        r = torch.from_numpy(rows).to(device)
        return model.encode_users(
            torch.from_numpy(users.dense[rows]).to(device),
            torch.from_numpy(users.categorical[rows]).to(device),
            history_bag(history, r) if history is not None else None,
        )

    u = _in_batches(model, encode, len(users.dense))
    return model.serving_users(torch.from_numpy(u)).numpy()


# Rows per encode call. Every call has exactly this many (the last padded with repeats of its first
# row): a CPU matrix product rounds a row differently depending on how many rows it multiplies
# (MKL picks its kernel by the batch size), so a user scored among 4 users and among 2,000 would get
# vectors that differ in the last bits, and the Spark export would not equal the local one.
BLOCK_ROWS = 256


def _in_batches(model, encode, n: int) -> np.ndarray:
    """encode(rows) over all n rows in blocks of BLOCK_ROWS, in inference mode (float32 [n, d])."""
    model.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, n, BLOCK_ROWS):
            rows = np.arange(s, min(s + BLOCK_ROWS, n))
            padded = np.concatenate([rows, np.full(BLOCK_ROWS - len(rows), s, dtype=rows.dtype)])
            out.append(encode(padded)[: len(rows)].cpu().numpy())
    d = model.out_dim
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, d), np.float32)


def history_bag(csr, rows):
    """EmbeddingBag inputs (item indices, offsets[, recency weights]) of rows `rows` of the CSR
    (indptr, indices[, weights]): features.csr_rows in torch tensors, on the model's device
    (training runs it once per batch)."""
    indptr, indices, *weights = csr
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    offsets = torch.cumsum(lengths, 0) - lengths
    at = torch.arange(int(lengths.sum()), device=indptr.device)
    at = at - torch.repeat_interleave(offsets - starts, lengths)
    return (indices[at], offsets, *(w[at] for w in weights))


def load_model(path: str | Path, device: str = "cpu"):
    """A TwoTowerModel (or TwoTowerEnsemble) from best.pt / checkpoint.pt, in eval mode."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    config = ckpt["model_config"]
    if "members" in config:
        model = TwoTowerEnsemble([TwoTowerModel(**c) for c in config["members"]])
    else:
        model = TwoTowerModel(**config)
    model.to(device).load_state_dict(ckpt["model"])
    model.eval()
    return model
