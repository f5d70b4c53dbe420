"""DatasetCatalog on llmops_datasets.DatasetStore (interface 1 of issue 9)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops_datasets import DatasetStore
from llmops_trainer.ports import DatasetFiles


class StoreCatalog:
    """Reads dataset versions through `llmops_datasets.DatasetStore(root)`."""

    def __init__(self, root: str | Path, store: Any | None = None) -> None:
        self.store = store if store is not None else DatasetStore(root)

    def get(self, tenant: str, dataset_id: str) -> DatasetFiles | None:
        try:
            version = self.store.get(tenant, dataset_id)
        except (KeyError, FileNotFoundError, LookupError):
            return None
        if version is None:
            return None
        return DatasetFiles(version.id, Path(version.train_path), Path(version.validation_path),
                            dict(version.manifest))

