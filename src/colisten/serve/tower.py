"""The user tower for one request: the model's own torch ops on its weights, without nn.Module.

One request runs the user tower on a single row. Through the modules (`encode_users`, the towers'
`forward`, `serving_users`) that is some twenty module calls, each with its hooks and dispatch,
which cost several times the arithmetic of a small MLP. `OneUserTower` takes the weights out once
at model load and applies the same functions to the same float32 inputs in the same order:
numpy copies for the embedding lookups and the concatenation (exact), torch's `embedding_bag`,
`linear`, `relu` and `normalize` for the rest, so the vector is bit-identical. The server checks
that on a sample of users at every load and keeps the module path when it differs
(`state._verified_tower`), or when the model is not one this understands (`OneUserTower.of`
answers None: per-type pooling of the learned item vectors, other layers). An ensemble's members
each get one (EnsembleUserTower).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colisten.twotower.features import UserFeatures


class OneUserTower:
    """A TwoTowerModel's user tower + serving_users for one row of UserFeatures."""

    def __init__(
        self,
        embeddings: list[np.ndarray],
        layers: list[tuple[torch.Tensor, torch.Tensor, bool]],
        history_ids: torch.Tensor | None,
        popularity_prior: bool,
        normalize_eps: float = 1e-12,
        history_recency: bool = False,
    ) -> None:
        self.embeddings = embeddings  # one float32 table per categorical column
        self.layers = layers  # (weight, bias, ReLU after it)
        self.history_ids = history_ids  # EmbeddingBag(mode="mean") weight, or None (no id_dim)
        self.popularity_prior = popularity_prior
        self.eps = normalize_eps
        self.history_recency = history_recency  # + the recency-weighted mean (TwoTowerModel._recent_vectors)
        self._offsets = torch.zeros(1, dtype=torch.int64)
        self._history_np = None if history_ids is None else history_ids.numpy()
        self._zeros = None if history_ids is None else np.zeros(history_ids.shape[1], dtype=np.float32)
        self._one = np.ones(1, dtype=np.float32)

    @classmethod
    def of(cls, model: Any) -> OneUserTower | EnsembleUserTower | None:
        """The tower of `model` (a TwoTowerModel or a TwoTowerEnsemble of them), or None when its
        structure is not the plain two-tower one."""
        if type(model).__name__ == "TwoTowerEnsemble":
            members = [cls.of(m) for m in model.members]
            if not members or any(not isinstance(m, OneUserTower) for m in members):
                return None
            return EnsembleUserTower(members, bool(model.popularity_prior))
        try:
            tower = model.user_tower
            if type(model).__name__ != "TwoTowerModel" or model.training:
                return None
            embeddings = []
            for emb in tower.embeddings:
                if type(emb) is not nn.Embedding or emb.max_norm is not None:
                    return None
                embeddings.append(emb.weight.detach().numpy())
            layers: list[tuple[torch.Tensor, torch.Tensor, bool]] = []
            for m in tower.mlp:
                if type(m) is nn.ReLU:
                    if not layers or layers[-1][2] or m.inplace:
                        return None
                    layers[-1] = (*layers[-1][:2], True)
                elif type(m) is nn.Linear and m.bias is not None:
                    layers.append((m.weight.detach(), m.bias.detach(), False))
                else:
                    return None
            if not layers or layers[-1][2]:
                return None
            history_ids = None
            if model.id_dim:
                bag = model.history_ids
                if (
                    model.id_pooling != "all"
                    or type(bag) is not nn.EmbeddingBag
                    or bag.mode != "mean"
                    or bag.max_norm is not None
                    or bag.padding_idx is not None
                    or bag.include_last_offset
                ):
                    return None
                history_ids = bag.weight.detach()
            recency = bool(getattr(model, "history_recency", False))
            return cls(embeddings, layers, history_ids, bool(model.popularity_prior), history_recency=recency)
        except (AttributeError, TypeError):
            return None

    def __call__(self, features: UserFeatures) -> np.ndarray:
        """The serving user vector (float32 [d], [d + 1] with the popularity prior) of row 0."""
        vector = self.unit(features).numpy()[0]
        return np.concatenate([vector, self._one]) if self.popularity_prior else vector

    def unit(self, features: UserFeatures) -> torch.Tensor:
        """The tower's L2-normalised output for row 0 (float32 [1, d]): encode_users."""
        categorical = features.categorical[0]
        parts = [features.dense[0]]
        parts += [table[categorical[i]] for i, table in enumerate(self.embeddings)]
        if self.history_ids is not None:
            streamed = features.history[1]
            if streamed.size:  # embedding_bag's mean: the rows added in order, divided by their count
                parts.append(self._history_np[streamed].sum(axis=0) / np.float32(streamed.size))
            else:
                parts.append(self._zeros)
        if self.history_ids is not None and self.history_recency:
            # the module's own ops on one row, so the sums round alike
            streamed = features.history[1]
            weights = torch.from_numpy(features.history[2])
            total = F.embedding_bag(
                torch.from_numpy(streamed),
                self.history_ids,
                self._offsets,
                mode="sum",
                per_sample_weights=weights,
            )
            norm = torch.zeros(1, dtype=weights.dtype).index_add_(
                0, torch.zeros(len(weights), dtype=torch.int64), weights
            )
            parts.append((total / norm.clamp_min(1e-12)[:, None]).numpy()[0])
        x = torch.from_numpy(np.concatenate(parts))[None, :]
        for weight, bias, relu in self.layers:
            x = F.linear(x, weight, bias)
            if relu:
                x = torch.relu(x)
        return F.normalize(x, dim=1, eps=self.eps)


class EnsembleUserTower:
    """A TwoTowerEnsemble's user side for one row: its members' unit vectors concatenated and
    divided by their number (TwoTowerEnsemble.encode_users), then the prior's column."""

    def __init__(self, members: list[OneUserTower], popularity_prior: bool) -> None:
        self.members = members
        self.popularity_prior = popularity_prior
        self._one = np.ones(1, dtype=np.float32)

    def __call__(self, features: UserFeatures) -> np.ndarray:
        joined = torch.cat([m.unit(features) for m in self.members], dim=1) / len(self.members)
        vector = joined.numpy()[0]
        return np.concatenate([vector, self._one]) if self.popularity_prior else vector
