"""Arm assignment: a salted hash of the user id, stable per (salt, user), and its balance check."""

from __future__ import annotations

import hashlib

import numpy as np
from scipy.stats import chisquare


def unit_hash(user_ids: np.ndarray, salt: str) -> np.ndarray:
    """A number in [0, 1) per user id from sha256(salt, id): the same id and salt, the same number."""
    out = np.empty(len(user_ids), dtype=np.float64)
    prefix = f"{salt}\x00".encode()
    for i, uid in enumerate(user_ids):
        digest = hashlib.sha256(prefix + str(uid).encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2.0**64
    return out


def assign_arms(user_ids: np.ndarray, n_arms: int, salt: str) -> np.ndarray:
    """Arm index (0 .. n_arms-1) of each user, equal shares in expectation."""
    return np.minimum((unit_hash(user_ids, f"arm:{salt}") * n_arms).astype(np.int64), n_arms - 1)


def sample_users(user_ids: np.ndarray, n: int | None, salt: str) -> np.ndarray:
    """Rows of the n users with the smallest hash (all rows, in order, when n is None)."""
    if n is None or n >= len(user_ids):
        return np.arange(len(user_ids))
    order = np.argsort(unit_hash(user_ids, f"sample:{salt}"), kind="stable")
    return np.sort(order[:n])


def balance(arm: np.ndarray, n_arms: int) -> dict:
    """Users per arm and the sample-ratio-mismatch p-value (chi-square against equal shares)."""
    counts = np.bincount(arm, minlength=n_arms)
    p = float(chisquare(counts).pvalue) if counts.sum() > 0 and n_arms > 1 else 1.0
    return {"users": counts.tolist(), "srm_p": p, "balanced": p >= 0.001}
