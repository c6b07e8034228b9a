"""Synthetic world: users, podcasts and audiobooks with logs in the data contract, calibrated to the
paper's observations, with the ground truth saved beside it.

Entry points: `simulate.generate_world` (and `Behaviour`), `stats.world_stats`, `truth.WorldTruth`.
"""
