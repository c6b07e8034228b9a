"""The two towers (PAPER.md §5) and their in-batch softmax loss with log-frequency correction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Tower(nn.Module):
    """Categorical embeddings + dense features -> MLP (ReLU between layers) -> L2-normalised vector.

    Normalising both towers makes the dot-product score a cosine, so one temperature fits every
    user and the same vectors work in an inner-product ANN index.
    """

    def __init__(
        self, dense_dim: int, categorical_sizes: list[int], categorical_dim: int, dims: list[int]
    ) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n, categorical_dim) for n in categorical_sizes)
        layers: list[nn.Module] = []
        width = dense_dim + categorical_dim * len(categorical_sizes)
        for i, out in enumerate(dims):
            layers.append(nn.Linear(width, out))
            if i < len(dims) - 1:
                layers.append(nn.ReLU())
            width = out
        self.mlp = nn.Sequential(*layers)

    @property
    def out_dim(self) -> int:
        return self.mlp[-1].out_features

    def forward(self, dense: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [dense] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
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
    ) -> None:
        super().__init__()
        self.config = {
            "user_dense_dim": user_dense_dim,
            "user_categorical_sizes": list(user_categorical_sizes),
            "item_dense_dim": item_dense_dim,
            "item_categorical_sizes": list(item_categorical_sizes),
            "categorical_dim": categorical_dim,
            "tower_dims": list(tower_dims),
        }
        self.user_tower = UserTower(user_dense_dim, user_categorical_sizes, categorical_dim, tower_dims)
        self.item_tower = ItemTower(item_dense_dim, item_categorical_sizes, categorical_dim, tower_dims)


def in_batch_softmax_loss(
    user_vectors: torch.Tensor,
    item_vectors: torch.Tensor,
    item_index: torch.Tensor,
    log_frequency: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Softmax over the batch's items for each (user, positive item) row, corrected by log frequency.

    The paper's Eq. 5 weights in-batch negatives by inverse item frequency: popular items appear
    as negatives in many batches and would otherwise be pushed down for everyone. We read it as
    the standard sampled-softmax correction (Yi et al., RecSys 2019): subtract log p(item) from
    every logit, p being the item's share of training labels, i.e. its chance to be drawn into
    a batch. Other rows with the same item are not negatives (masked out).
    """
    logits = user_vectors @ item_vectors.T / temperature - log_frequency[None, :]
    same = item_index[None, :] == item_index[:, None]
    same.fill_diagonal_(False)
    logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(user_vectors), device=logits.device)
    return F.cross_entropy(logits, target)
