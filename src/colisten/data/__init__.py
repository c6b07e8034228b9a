"""The data contract (reading the input files, validation, quarantine) and the global temporal split.

Entry points: `contract.validate_dataset` (-> ValidationReport), `split.temporal_split`
(-> SplitInfo), and the stages `stage.validate` and `stage.split`. The readers of the artifacts
they write (`load_items`, `load_history`, ...) are in colisten.artifacts.
"""
