"""Offline evaluation: the harness, metrics, baselines, oracles, ablations and the HTML report.

Entry points: the stage `stage.run` (`colisten evaluate`), `harness.evaluate`, `report.write_report`.
"""
