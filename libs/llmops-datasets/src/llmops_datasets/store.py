"""The artifact store of dataset versions: a local folder, or object storage through fsspec.

Layout (the same on both): `<root>/<tenant>/<dataset_id>/` holding `manifest.json` and
`train.jsonl` + `validation.jsonl` (`records.jsonl` for kind eval), plus `skipped.jsonl` when
lines were skipped. A version is complete once its manifest exists: in a local folder the
version is written to a hidden temporary folder and renamed into place; on object storage the
manifest is the last object written. Versions are immutable: writing one that exists changes
nothing and returns it.

`root` is a path, or a URL fsspec understands: `s3://bucket/prefix` (with `s3fs` installed and
the usual AWS_* credentials), `gs://...`, `memory://...` (tests). `get` of a remote version copies
its files once into `cache_dir` so readers (the trainer) always get local paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops_datasets.build import Built
from llmops_datasets.records import canonical

MANIFEST = "manifest.json"
TRAIN, VALIDATION, RECORDS, SKIPPED = "train.jsonl", "validation.jsonl", "records.jsonl", "skipped.jsonl"
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ID = re.compile(r"^ds-[0-9a-f]{16}$")


class DatasetNotFound(KeyError):
    pass


def default_root() -> str:
    """LLMOPS_DATASETS_ROOT, else $LLMOPS_HOME/artifacts/datasets (LLMOPS_HOME default .llmops)."""
    home = Path(os.environ.get("LLMOPS_HOME") or ".llmops")
    return os.environ.get("LLMOPS_DATASETS_ROOT") or str(home / "artifacts" / "datasets")


def check_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant) or tenant in (".", ".."):
        raise ValueError(f"not a valid tenant id: {tenant!r}")
    return tenant


def check_id(dataset_id: str) -> str:
    if not _ID.match(dataset_id):
        raise DatasetNotFound(f"not a dataset id: {dataset_id!r} (ds- and 16 hex digits)")
    return dataset_id


@dataclass(frozen=True)
class DatasetVersion:
    id: str
    tenant: str
    # A local folder with the version's files (a cached copy for object storage).
    path: Path
    manifest: dict[str, Any]
    # Where the version lives: the folder, or its URL on object storage.
    uri: str

    @property
    def train_path(self) -> Path:
        return self.path / TRAIN

    @property
    def validation_path(self) -> Path:
        return self.path / VALIDATION

    @property
    def records_path(self) -> Path:
        return self.path / RECORDS

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))

    @property
    def kind(self) -> str:
        return str(self.manifest.get("kind", ""))


def _jsonl(records: list[dict[str, Any]]) -> bytes:
    return "".join(canonical(r) + "\n" for r in records).encode()


class DatasetStore:
    def __init__(self, root: str | Path | None = None, cache_dir: Path | None = None) -> None:
        import fsspec

        self.root = str(root or default_root()).rstrip("/")
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                else (self.fs.protocol,))
        home = Path(os.environ.get("LLMOPS_HOME") or ".llmops")
        self.cache_dir = cache_dir or home / "cache" / "datasets"

    def key(self, tenant: str, dataset_id: str, name: str = "") -> str:
        """The object key (or path) of a version's folder or of one of its files."""
        parts = [self._base.rstrip("/"), check_tenant(tenant), check_id(dataset_id)]
        return "/".join(parts + ([name] if name else []))

    def uri(self, tenant: str, dataset_id: str) -> str:
        return f"{self.root}/{tenant}/{dataset_id}"

    def _manifest(self, tenant: str, dataset_id: str) -> dict[str, Any] | None:
        try:
            with self.fs.open(self.key(tenant, dataset_id, MANIFEST), "rb") as handle:
                manifest: dict[str, Any] = json.loads(handle.read())
                return manifest
        except FileNotFoundError:
            return None

    def exists(self, tenant: str, dataset_id: str) -> bool:
        return self._manifest(tenant, dataset_id) is not None

    def write(self, tenant: str, built: Built, name: str, created_by: str = "",
              source: dict[str, Any] | None = None) -> tuple[DatasetVersion, bool]:
        """Stores `built` (no-op when the version exists); (version, whether it was written)."""
        if self.exists(tenant, built.id):
            return self.get(tenant, built.id), False
        manifest = {**built.manifest, "id": built.id, "tenant": tenant, "name": name,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "created_by": created_by}
        if source is not None:
            manifest["source"] = source
        files = {n: _jsonl(r) for n, r in built.files.items()}
        if built.skipped:
            files[SKIPPED] = "".join(json.dumps(p.as_dict()) + "\n" for p in built.skipped).encode()
        files[MANIFEST] = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
        created = True
        if self.local:
            created = self._write_local(tenant, built.id, files)
        else:
            folder = self.key(tenant, built.id)
            for file_name in sorted(files, key=lambda n: n == MANIFEST):  # manifest last
                self.fs.pipe_file(f"{folder}/{file_name}", files[file_name])
        return self.get(tenant, built.id), created

    def _write_local(self, tenant: str, dataset_id: str, files: dict[str, bytes]) -> bool:
        """Whether this call put the version in place (False: a concurrent writer did)."""
        final = Path(self.key(tenant, dataset_id))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{dataset_id}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for file_name, data in files.items():
                (tmp / file_name).write_bytes(data)
            try:
                os.rename(tmp, final)
                return True
            except OSError:
                if not (final / MANIFEST).is_file():  # not a concurrent writer of the same version
                    raise
                return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def get(self, tenant: str, dataset_id: str) -> DatasetVersion:
        manifest = self._manifest(tenant, dataset_id)
        if manifest is None:
            raise DatasetNotFound(f"dataset {dataset_id} not found for tenant {tenant}")
        path = Path(self.key(tenant, dataset_id)) if self.local else self._cached(tenant, dataset_id)
        return DatasetVersion(dataset_id, tenant, path, manifest, self.uri(tenant, dataset_id))

    def _cached(self, tenant: str, dataset_id: str) -> Path:
        target = self.cache_dir / tenant / dataset_id
        if (target / MANIFEST).is_file():
            return target
        tmp = target.parent / f".{dataset_id}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            for remote in self.fs.ls(self.key(tenant, dataset_id), detail=False):
                (tmp / remote.rstrip("/").rsplit("/", 1)[-1]).write_bytes(self.fs.cat_file(remote))
            try:
                os.rename(tmp, target)
            except OSError:
                if not (target / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def delete_tenant(self, tenant: str) -> int:
        """Removes every version of a deleted tenant (TenantDeleted); how many there were."""
        folder = f"{self._base.rstrip('/')}/{check_tenant(tenant)}"
        count = len(self.list(tenant))
        if self.fs.exists(folder):
            self.fs.rm(folder, recursive=True)
        shutil.rmtree(self.cache_dir / tenant, ignore_errors=True)
        return count

    def list(self, tenant: str) -> list[DatasetVersion]:
        """The tenant's versions, newest first."""
        folder = f"{self._base.rstrip('/')}/{check_tenant(tenant)}"
        try:
            entries = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if _ID.match(name) and (manifest := self._manifest(tenant, name)) is not None:
                path = Path(self.key(tenant, name)) if self.local else self.cache_dir / tenant / name
                found.append(DatasetVersion(name, tenant, path, manifest, self.uri(tenant, name)))
        return sorted(found, key=lambda v: (str(v.manifest.get("created_at", "")), v.id), reverse=True)
