"""Dataset versions for fine-tuning and evaluation (see README.md).

    from llmops_datasets import BuildSettings, DatasetStore, HFTokenCounter, build_jsonl
    built = build_jsonl(path.read_bytes(), BuildSettings(kind="instruction"), counter)
    version, created = DatasetStore(root).write("acme", built, name="hr-faq")
    DatasetStore(root).get("acme", version.id).train_path
"""

from llmops_datasets.build import BuildSettings, Built, InvalidDataset, build_jsonl, build_texts
from llmops_datasets.dedupe import NearDuplicates
from llmops_datasets.records import KINDS, Problem
from llmops_datasets.store import DatasetNotFound, DatasetStore, DatasetVersion, default_root
from llmops_datasets.tokens import HFTokenCounter, TokenCounter, WhitespaceCounter

__all__ = ["KINDS", "BuildSettings", "Built", "DatasetNotFound", "DatasetStore", "DatasetVersion",
           "HFTokenCounter", "InvalidDataset", "NearDuplicates", "Problem", "TokenCounter",
           "WhitespaceCounter", "build_jsonl", "build_texts", "default_root"]
