"""The evaluation runner (`llmops eval run`, the trainer's continuous training): asks every
question of an evaluation set through the real answer path.

Each question goes to inference's Generate with the model version pinned
(GenerateRequest.model_version), the answer cache off and greedy decoding; its result is judged
with llmops_kit.evaluation (holds the expected fact, cites the expected document). Groundedness
is inference's own score (its QualityScorer, published in InferenceCompleted after the answer):
read back from the bus by request id, when a bus is reachable.

Evaluation sets: a dataset version of kind eval (`ds-...`, looked up in the dataset store: its
records.jsonl), or a JSONL file in the samples/eval/questions.jsonl format.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from llmops.inference.v1 import inference_pb2
from llmops_kit.evaluation.questions import EvalQuestion, parse
from llmops_kit.evaluation.runs import QuestionResult, judge

Generate = Callable[[inference_pb2.GenerateRequest], Awaitable[inference_pb2.GenerateResponse]]


class EvalSets(Protocol):
    def records_path(self, tenant: str, dataset_id: str) -> Path:
        """The records.jsonl of an evaluation dataset version; ValueError if it is missing or
        not of kind eval."""
        ...


class GroundednessSource(Protocol):
    async def begin(self) -> None:
        """Called before the first question: scores of earlier answers are not wanted."""
        ...

    async def scores(self, request_ids: Sequence[str]) -> dict[str, float]:
        """Inference's groundedness per request id (absent: not scored, or not seen in time)."""
        ...


def datasets_root() -> Path:
    """LLMOPS_DATASETS_ROOT, else $LLMOPS_HOME/artifacts/datasets (the dataset store's default)."""
    if os.environ.get("LLMOPS_DATASETS_ROOT"):
        return Path(os.environ["LLMOPS_DATASETS_ROOT"])
    return Path(os.environ.get("LLMOPS_HOME", ".llmops")) / "artifacts" / "datasets"


class DatasetStoreSets:
    """Evaluation sets from the dataset store: llmops_datasets.DatasetStore where installed
    (local folders and object storage), else its on-disk layout
    <root>/<tenant>/<dataset_id>/{manifest.json,records.jsonl}."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = root

    def records_path(self, tenant: str, dataset_id: str) -> Path:
        try:
            from llmops_datasets import DatasetStore  # type: ignore[attr-defined,unused-ignore]
        except ImportError:
            folder = Path(self.root or datasets_root()) / tenant / dataset_id
            manifest_path, records = folder / "manifest.json", folder / "records.jsonl"
            if not manifest_path.is_file():
                raise ValueError(f"dataset {dataset_id} not found for tenant {tenant}") from None
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        else:
            try:
                version = DatasetStore(self.root or datasets_root()).get(tenant, dataset_id)
            except Exception as exc:  # DatasetNotFound, storage errors: one clear message
                raise ValueError(f"dataset {dataset_id} of tenant {tenant}: {exc}") from exc
            manifest, records = version.manifest, Path(version.records_path)
        if manifest.get("kind") != "eval":
            raise ValueError(f"dataset {dataset_id} is of kind {manifest.get('kind')!r}, "
                             "not eval")
        return records


@dataclass(frozen=True)
class EvalSet:
    # What the run records as its dataset: the dataset id, or <file name>@<content hash>.
    name: str
    questions: list[EvalQuestion]


def load_set(spec: str, tenant: str, sets: EvalSets) -> EvalSet:
    """`spec`: a dataset id (ds-...) or a path to a JSONL file."""
    path = Path(spec)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return EvalSet(f"{path.name}@{digest}", parse(text, str(path)))
    if not spec.startswith("ds-"):
        raise ValueError(f"{spec}: neither a file nor a dataset id (ds-...)")
    records = sets.records_path(tenant, spec)
    return EvalSet(spec, parse(records.read_text(encoding="utf-8"), f"{spec}/records.jsonl"))


def split_ref(ref: str, what: str, default_pointer: str = "") -> tuple[str, str]:
    name, _, pointer = ref.partition("@")
    if not name or not (pointer or default_pointer):
        raise ValueError(f"{what} must be NAME@{'VERSION' if what == 'model' else 'LABEL'}")
    return name, pointer or default_pointer


@dataclass(frozen=True)
class Answered:
    result: QuestionResult
    request_id: str
    served: str  # "<model>@<version>" inference reports
    prompt_version: str


_SAFETY = {inference_pb2.SAFETY_OUTCOME_ALLOW: "allow", inference_pb2.SAFETY_OUTCOME_REDACT:
           "redact", inference_pb2.SAFETY_OUTCOME_BLOCK: "block"}


async def ask(generate: Generate, q: EvalQuestion, model_version: int, prompt_name: str,
              prompt_label: str, max_new_tokens: int) -> Answered:
    req = inference_pb2.GenerateRequest(
        question=q.question, model_version=model_version, prompt_name=prompt_name,
        prompt_label=prompt_label, max_new_tokens=max_new_tokens, no_cache=True)
    started = time.perf_counter()
    try:
        resp = await generate(req)
    except Exception as exc:  # a failed question counts as wrong, and the run goes on
        code = getattr(exc, "code", None)
        what = code().name if callable(code) else type(exc).__name__
        details = getattr(exc, "details", None)
        text = details() if callable(details) else str(exc)
        return Answered(QuestionResult(q.id, q.question, q.answerable,
                                       latency_ms=(time.perf_counter() - started) * 1000,
                                       error=f"{what}: {text}"[:500]), "", "", "")
    wall_ms = (time.perf_counter() - started) * 1000
    stages = {s.stage: s.milliseconds for s in resp.stages}
    holds, cited = judge(q, resp.answer, [c.document_id for c in resp.citations], resp.refusal,
                         resp.blocked)
    result = QuestionResult(
        q.id, q.question, q.answerable, answer=resp.answer, holds_fact=holds, cited=cited,
        latency_ms=stages.get("total", wall_ms), prompt_tokens=resp.prompt_tokens,
        completion_tokens=resp.completion_tokens, safety=_SAFETY.get(resp.output_safety, ""),
        blocked=resp.blocked, refusal=resp.refusal)
    return Answered(result, resp.request_id, resp.model_version, resp.prompt_version)


@dataclass(frozen=True)
class RunOutcome:
    results: list[QuestionResult]
    prompt_version: int
    # Versions inference reported that were not the one asked for (must stay empty).
    mismatched: list[str]


async def run_set(generate: Generate, questions: Sequence[EvalQuestion], model: str,
                  version: int, prompt_name: str, prompt_label: str, max_new_tokens: int,
                  groundedness: GroundednessSource | None,
                  progress: Callable[[int, QuestionResult], None] | None = None) -> RunOutcome:
    if groundedness is not None:
        await groundedness.begin()
    answered: list[Answered] = []
    for i, q in enumerate(questions, start=1):
        a = await ask(generate, q, version, prompt_name, prompt_label, max_new_tokens)
        answered.append(a)
        if progress:
            progress(i, a.result)
    expected = f"{model}@{version}"
    mismatched = sorted({a.served for a in answered if a.served and a.served != expected})
    prompt_versions = {a.prompt_version for a in answered if a.prompt_version}
    prompt_version = int(next(iter(prompt_versions)).rpartition("@")[2]) \
        if len(prompt_versions) == 1 else 0
    scores: dict[str, float] = {}
    ids = [a.request_id for a in answered if a.request_id and not a.result.refused]
    if groundedness is not None and ids:
        scores = await groundedness.scores(ids)
    results = [replace(a.result, groundedness=scores.get(a.request_id)) for a in answered]
    return RunOutcome(results, prompt_version, mismatched)
