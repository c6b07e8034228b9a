"""Public data sets recast into the data contract with two item types (`colisten datasets`).

Entry points: `recast.recast` (the one protocol), `movielens.py` (MovieLens-100K) and
`movielens_small.py` (ml-latest-small).
"""
