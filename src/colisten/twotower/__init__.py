"""Two-tower model (PAPER.md §5): user/item features, towers, training, real-time user vectors.

Entry points: `stage.run` (stage `train-2t`) and `recommender.TwoTowerRecommender`.
"""
