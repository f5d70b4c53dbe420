"""Creating, reading and listing a tenant's dataset versions: the library builds and stores,
the catalogue indexes, errors become the kit's DomainError family with stable reasons."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from llmops_datasets import BuildSettings, DatasetStore, InvalidDataset, NearDuplicates, TokenCounter
from llmops_datasets.build import Built, build_jsonl, build_texts
from llmops_kit.errors import InvalidArgument, NotFound
from llmops_trainer.datasets.catalogue import Entry, SqlCatalogue
from llmops_trainer.datasets.settings import DatasetSettings
from llmops_trainer.datasets.sources import DocumentSource

log = logging.getLogger(__name__)

# Called once per new version (not when the same content is created again), e.g. to publish
# DatasetVersionCreated. A failure is logged; the version stays created.
OnCreated = Callable[[Entry], Awaitable[None]]


@dataclass(frozen=True)
class Options:
    """Per-request overrides of the settings (None: the setting)."""

    max_seq_len: int | None = None
    validation_fraction: float | None = None
    seed: int | None = None
    near_duplicate_threshold: float | None = None
    disable_near_dedupe: bool = False
    skip_invalid: bool = False


class InvalidDatasetError(InvalidArgument):
    """INVALID_ARGUMENT whose message lists the first problems, one per line."""

    def __init__(self, exc: InvalidDataset) -> None:
        lines = [exc.message, *(str(p) for p in exc.problems)]
        if exc.total > len(exc.problems):
            lines.append(f"... and {exc.total - len(exc.problems)} more")
        super().__init__(exc.reason, "\n".join(lines))
        self.problems = exc.problems


class DatasetService:
    def __init__(self, settings: DatasetSettings, store: DatasetStore, catalogue: SqlCatalogue,
                 counter: Callable[[], TokenCounter], documents: DocumentSource,
                 on_created: OnCreated | None = None) -> None:
        self.settings = settings
        self.on_created = on_created
        # Builds are CPU-bound (tokenising, MinHash, PII): a few at a time, each in a thread.
        self._builds = asyncio.Semaphore(settings.max_concurrent_builds)
        self.store = store
        self.catalogue = catalogue
        self._counter_factory = counter
        self._counter: TokenCounter | None = None
        self._lock = threading.Lock()
        self.documents = documents

    def counter(self) -> TokenCounter:
        """The tokenizer, loaded on first use (not at start-up: it may need a GGUF read)."""
        with self._lock:
            if self._counter is None:
                self._counter = self._counter_factory()
            return self._counter

    def build_settings(self, kind: str, options: Options) -> BuildSettings:
        s = self.settings
        threshold = (s.near_duplicate_threshold if options.near_duplicate_threshold is None
                     else options.near_duplicate_threshold)
        if options.max_seq_len is not None and not 8 <= options.max_seq_len <= 8192:
            raise InvalidArgument("BAD_MAX_SEQ_LEN", "max_seq_len must be in [8, 8192]")
        if options.validation_fraction is not None and not 0 <= options.validation_fraction < 1:
            raise InvalidArgument("BAD_VALIDATION_FRACTION", "validation_fraction must be in [0, 1)")
        if not 0 < threshold <= 1:
            raise InvalidArgument("BAD_THRESHOLD", "near_duplicate_threshold must be in (0, 1]")
        return BuildSettings(
            kind=kind, max_seq_len=options.max_seq_len or s.max_seq_len, base_model=s.base_model,
            validation_fraction=(s.validation_fraction if options.validation_fraction is None
                                 else options.validation_fraction),
            seed=s.seed if options.seed is None else options.seed,
            near=NearDuplicates(None if options.disable_near_dedupe else threshold,
                                s.num_perm, s.shingle_words),
            redact_pii=s.redact_pii, skip_invalid=options.skip_invalid,
            max_errors=s.max_errors, max_records=s.max_records)

    @staticmethod
    def _name(name: str) -> str:
        name = name.strip()
        if not name or len(name) > 256:
            raise InvalidArgument("BAD_NAME", "name must be 1-256 characters")
        return name

    async def create_from_jsonl(self, tenant: str, name: str, kind: str, data: bytes,
                                options: Options, created_by: str) -> tuple[Entry, bool]:
        name = self._name(name)
        if len(data) > self.settings.max_upload_bytes:
            raise InvalidArgument("UPLOAD_TOO_LARGE", f"{len(data)} bytes; at most "
                                  f"{self.settings.max_upload_bytes}")
        if not data.strip():
            raise InvalidArgument("EMPTY_UPLOAD", "the upload is empty")
        settings = self.build_settings(kind, options)
        return await self._run(tenant, name, created_by,
                               lambda c: build_jsonl(data, settings, c, {"type": "upload"}))

    async def create_from_documents(self, tenant: str, name: str, document_ids: Sequence[str],
                                    options: Options, created_by: str) -> tuple[Entry, bool]:
        name = self._name(name)
        ids = list(dict.fromkeys(d.strip() for d in document_ids))
        if not ids or not all(ids):
            raise InvalidArgument("NO_DOCUMENTS", "name the documents (document ids) to read")
        if len(ids) > self.settings.max_documents:
            raise InvalidArgument("TOO_MANY_DOCUMENTS", f"{len(ids)} documents; at most "
                                  f"{self.settings.max_documents}")
        settings = self.build_settings("text", options)
        docs = await self.documents.fetch(tenant, ids)
        source = {"type": "documents", "documents": [
            {"document_id": d.document_id, "version": d.version} for d in docs]}
        texts = [(d.document_id, d.text) for d in docs]
        return await self._run(tenant, name, created_by,
                               lambda c: build_texts(texts, settings, c, source))

    async def _run(self, tenant: str, name: str, created_by: str,
                   build: Callable[[TokenCounter], Built]) -> tuple[Entry, bool]:
        async with self._builds:
            entry, created = await asyncio.to_thread(self._build_and_store, tenant, name,
                                                     created_by, build)
        if created and self.on_created is not None:
            try:
                await self.on_created(entry)
            except Exception:
                log.exception("dataset version created, but its event could not be published",
                              extra={"dataset_id": entry.id})
        return entry, created

    def _build_and_store(self, tenant: str, name: str, created_by: str,
                         build: Callable[[TokenCounter], Built]) -> tuple[Entry, bool]:
        try:
            built = build(self.counter())
        except InvalidDataset as exc:
            raise InvalidDatasetError(exc) from None
        version, created = self.store.write(tenant, built, name=name, created_by=created_by)
        entry = self.catalogue.add(tenant, version.manifest, version.uri)
        log.info("dataset version %s", "created" if created else "exists",
                 extra={"dataset_id": built.id, "kind": built.kind,
                        "records": sum(len(r) for r in built.files.values())})
        return entry, created

    async def get(self, tenant: str, dataset_id: str) -> Entry:
        entry = await asyncio.to_thread(self.catalogue.get, tenant, dataset_id.strip())
        if entry is None:
            raise NotFound("DATASET_NOT_FOUND", f"no dataset {dataset_id!r} in this tenant")
        return entry

    async def delete_tenant(self, tenant: str) -> int:
        """Forgets a deleted tenant's versions (catalogue rows and files); how many rows."""
        rows = await asyncio.to_thread(self.catalogue.delete_tenant, tenant)
        # ValueError: not an id the store accepts, so it never held a version of it.
        with contextlib.suppress(ValueError):
            await asyncio.to_thread(self.store.delete_tenant, tenant)
        return rows

    async def list(self, tenant: str, kind: str | None, limit: int) -> list[Entry]:
        return await asyncio.to_thread(self.catalogue.list, tenant, kind, min(limit or 100, 1000))


def manifest_problems(entry: Entry) -> list[dict[str, Any]]:
    return list(entry.manifest.get("validation", {}).get("skipped", []))
