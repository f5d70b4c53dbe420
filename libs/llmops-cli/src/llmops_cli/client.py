"""gRPC clients for people and scripts: resolves a tenant to its API key, adds metadata."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import grpc

from llmops.ingestion.v1 import ingestion_pb2, ingestion_pb2_grpc
from llmops.vectorstore.v1 import vectorstore_pb2, vectorstore_pb2_grpc
from llmops_kit.settings import DEV_ADMIN_KEY, DEV_API_KEYS, parse_api_keys

CONTENT_TYPES = {
    ".md": ingestion_pb2.CONTENT_TYPE_MARKDOWN,
    ".markdown": ingestion_pb2.CONTENT_TYPE_MARKDOWN,
    ".html": ingestion_pb2.CONTENT_TYPE_HTML,
    ".htm": ingestion_pb2.CONTENT_TYPE_HTML,
    ".txt": ingestion_pb2.CONTENT_TYPE_TEXT,
    ".text": ingestion_pb2.CONTENT_TYPE_TEXT,
}


def dev_mode() -> bool:
    return os.environ.get("LLMOPS_DEV_MODE", "").strip().lower() in ("1", "true", "yes", "on")


def api_key_for(tenant: str, explicit: str | None = None) -> str:
    """The key to send: --api-key / LLMOPS_API_KEY; in development mode, the tenant's
    well-known key (LLMOPS_API_KEYS, default DEV_API_KEYS; a maintainer key first)."""
    if explicit:
        return explicit
    if os.environ.get("LLMOPS_API_KEY"):
        return os.environ["LLMOPS_API_KEY"]
    if dev_mode():
        owners = parse_api_keys(os.environ.get("LLMOPS_API_KEYS") or DEV_API_KEYS).items()
        for key, owner in sorted(owners, key=lambda item: ":" in item[1]):
            if owner.partition(":")[0] == tenant:
                return key
    raise SystemExit(f"no API key for tenant {tenant!r}: pass --api-key or set LLMOPS_API_KEY "
                     "(an admin creates keys with `llmops keys create`)")


def admin_key(explicit: str | None = None) -> str:
    """The key for tenant and key administration: --api-key, LLMOPS_ADMIN_KEY, LLMOPS_API_KEY
    (a maintainer managing its member keys), or the development admin key in dev mode."""
    for key in (explicit, os.environ.get("LLMOPS_ADMIN_KEY"), os.environ.get("LLMOPS_API_KEY")):
        if key:
            return key
    if dev_mode():
        return DEV_ADMIN_KEY
    raise SystemExit("no admin key: pass --api-key, or set LLMOPS_ADMIN_KEY (or LLMOPS_API_KEY)")


def metadata(api_key: str) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", api_key), ("x-trace-id", uuid.uuid4().hex))


@dataclass(frozen=True)
class IngestFile:
    path: Path
    # Relative to the folder named (or the file's name): the same wherever the folder lives.
    document_id: str
    # The folder's own name, then the path inside it ("corpus/a.md"); never an absolute path,
    # which would publish the user's home directory (and often their name) with every chunk.
    source: str


def files_to_ingest(paths: list[str]) -> list[IngestFile]:
    """Files to ingest, with ids and sources relative to what the user named."""
    out: list[IngestFile] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # resolve(): "." and ".." have no name of their own.
            prefix = PurePosixPath(path.resolve().name)
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                if file.suffix.lower() in CONTENT_TYPES:
                    rel = file.relative_to(path).as_posix()
                    out.append(IngestFile(file, rel, (prefix / rel).as_posix()))
        elif path.is_file():
            out.append(IngestFile(path, path.name, path.name))
        else:
            raise SystemExit(f"no such file or directory: {raw}")
    return out


def collect(paths: list[str]) -> list[tuple[Path, str]]:
    """Files to ingest with their document ids (path relative to the argument's folder)."""
    return [(f.path, f.document_id) for f in files_to_ingest(paths)]


def document_for(path: Path, document_id: str, source: str | None = None) -> ingestion_pb2.Document:
    """`source` defaults to the document id (relative): the local path is never sent."""
    content = path.read_bytes()
    title = path.stem.replace("-", " ").replace("_", " ")
    return ingestion_pb2.Document(
        document_id=document_id,
        title=title,
        source=document_id if source is None else source,
        content_type=CONTENT_TYPES.get(path.suffix.lower(), ingestion_pb2.CONTENT_TYPE_TEXT),
        content=content,
        metadata={"filename": path.name, "extension": path.suffix.lower().lstrip(".")},
    )


class Clients:
    def __init__(self, ingestion: str, vector_store: str) -> None:
        self._channels = [grpc.aio.insecure_channel(ingestion),
                          grpc.aio.insecure_channel(vector_store)]
        self.ingestion = ingestion_pb2_grpc.IngestionServiceStub(self._channels[0])
        self.vector_store = vectorstore_pb2_grpc.VectorStoreServiceStub(self._channels[1])

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()


SEARCH_MODES = {
    "vector": vectorstore_pb2.SEARCH_MODE_VECTOR,
    "hybrid": vectorstore_pb2.SEARCH_MODE_HYBRID,
    "keyword": vectorstore_pb2.SEARCH_MODE_KEYWORD,
}
