"""`llmops eval run`'s runner: moved to llmops_kit.evaluation.runner (the trainer's continuous
training uses the same one); re-exported here for the CLI and its tests."""

from __future__ import annotations

from llmops_kit.evaluation.runner import (
    Answered,
    DatasetStoreSets,
    EvalSet,
    EvalSets,
    Generate,
    GroundednessSource,
    RunOutcome,
    ask,
    datasets_root,
    load_set,
    run_set,
    split_ref,
)

__all__ = ["Answered", "DatasetStoreSets", "EvalSet", "EvalSets", "Generate",
           "GroundednessSource", "RunOutcome", "ask", "datasets_root", "load_set", "run_set",
           "split_ref"]
