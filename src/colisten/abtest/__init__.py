"""Simulated online A/B test in a synthetic world: each arm's model fills a home shelf every day
from the user's history so far, and the world's own choice model (colisten.world.simulate)
decides what the users start and stream. `colisten abtest --run RUN --arms ...`."""
