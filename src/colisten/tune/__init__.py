"""Settings chosen on a history-only validation split, the same trial budget for every model.

`validation.py` carves the split, `spaces.py` holds each model's documented search space,
`search.py` runs the trials and records the choice in RUN/tune/tuning.json, `choice.py` reads it
back for the later stages, `stage.py` is the pipeline's `tune` stage.
"""
