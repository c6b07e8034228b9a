"""The stage contract (issue 17): every stage of the pipeline is one function of the same shape,
`(rd, settings, *, log, stage options) -> dict`, in its package's stage.py, and records itself in
the run's manifest (tests/test_pipeline.py checks the order of the stages and the records of a
whole run)."""

import importlib
import inspect

import pytest

from colisten.pipeline import PIPELINE, Stage

# the stages outside `colisten run` follow the same contract
EVERY_STAGE = (*PIPELINE, Stage("abtest", "colisten.abtest.stage"))


@pytest.mark.parametrize("stage", EVERY_STAGE, ids=lambda s: s.name)
def test_every_stage_has_the_same_signature(stage):
    assert stage.module.endswith(".stage"), f"{stage.name}: not in a package's stage.py"
    function = getattr(importlib.import_module(stage.module), stage.function)
    signature = inspect.signature(function)
    params = list(signature.parameters.values())
    assert [p.name for p in params[:2]] == ["rd", "settings"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:2])
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:]), f"{stage.name}: options are keyword-only"
    assert signature.parameters["log"].default is not inspect.Parameter.empty
    assert signature.return_annotation in ("dict[str, Any]", dict)
