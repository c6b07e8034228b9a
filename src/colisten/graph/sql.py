"""SQL fragments the two graph backends share, so DuckDB (`colisten.graph.build`) and Spark
(`colisten.graph.spark`) apply the same edge rule and weights."""

from __future__ import annotations

SECONDS_PER_DAY = 86_400


def association_sql(
    kind: str, cocount: str, n_src: str, n_dst: str, n_users: int, shrinkage: float = 0.0
) -> str:
    """SQL (DuckDB and Spark) for an edge's weight: its co-count, or the co-count normalised by the
    two items' user counts (`graph.association`). On dense logs almost every pair is co-listened
    by someone; the normalised weights say which pairs are co-listened more than their popularity
    explains. `shrinkage` is added to the cosine and Jaccard denominators (as in item-kNN), so a
    pair of rare items seen together once does not outrank pairs many users share."""
    if kind == "cocount":
        return f"CAST({cocount} AS DOUBLE)"
    if kind == "cosine":
        return f"{cocount} / (sqrt({n_src} * {n_dst}) + {float(shrinkage)})"
    if kind == "jaccard":
        return f"{cocount} / ({n_src} + {n_dst} - {cocount} + {float(shrinkage)})"
    if kind == "ppmi":
        return f"ln({cocount} * {float(n_users)} / ({n_src} * {n_dst}))"
    raise ValueError(f"unknown graph.association {kind!r}")


def association_keep(kind: str, cocount: str, n_src: str, n_dst: str, n_users: int) -> str:
    """SQL condition of the pairs an association keeps: PPMI drops pairs co-listened no more often
    than chance (PMI <= 0); the others keep every pair."""
    if kind == "ppmi":
        return f"{cocount} * {float(n_users)} > {n_src} * {n_dst}"
    return "TRUE"


def type_of(column: str, type_starts: list[int]) -> str:
    """SQL (DuckDB and Spark) for the type ordinal of a global item index: types are contiguous ranges."""
    if len(type_starts) <= 1:
        return "0"
    cases = " ".join(f"WHEN {column} < {start} THEN {k}" for k, start in enumerate(type_starts[1:]))
    return f"(CASE {cases} ELSE {len(type_starts) - 1} END)"
