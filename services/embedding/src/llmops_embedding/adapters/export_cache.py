"""Where exported encoders live: one folder per model + backend + library versions.

An export is made once, offline, from the shipped weights and reused by every later start.
The key covers everything that can change the exported graph or how it runs: the model's
files (by content), the backend, and the versions of the libraries that trace and run it. A
new wheel of any of them gets a new folder, never a stale graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Bump when the exported graph's inputs/outputs or this folder's layout change.
LAYOUT_VERSION = 2
META_FILE = "export.json"
# The libraries every export depends on; each backend adds its own runtime (RUNTIME_PACKAGES).
TRACE_PACKAGES = ("torch", "transformers", "sentence-transformers")
RUNTIME_PACKAGES = {"onnx": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino")}


def library_versions(backend: str) -> dict[str, str]:
    """Installed versions of the packages that trace and run `backend` ("missing" if absent)."""
    out: dict[str, str] = {}
    for name in (*TRACE_PACKAGES, *RUNTIME_PACKAGES.get(backend, ())):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def model_fingerprint(path: Path) -> str:
    """sha256 over the model folder's files (relative names and contents), in a stable order.

    Contents, not mtimes: the same wheel installed twice must hit the same export, and a
    re-trained model written over the same folder must not.
    """
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel or "__pycache__" in rel:
            continue
        digest.update(rel.encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def cache_key(model: str, fingerprint: str, backend: str, versions: dict[str, str]) -> str:
    """A folder name a person can read (model, backend) plus a hash of everything else."""
    material = json.dumps(
        {"layout": LAYOUT_VERSION, "model": model, "fingerprint": fingerprint,
         "backend": backend, "versions": versions},
        sort_keys=True,
    )
    slug = re.sub(r"[^A-Za-z0-9]+", "-", model).strip("-").lower()[-48:] or "model"
    return f"{slug}-{backend}-{hashlib.sha256(material.encode()).hexdigest()[:16]}"


class ExportCache:
    """Folders under `root`, each complete or absent: an export is written to a temporary
    folder beside them and renamed into place, so a crash mid-export leaves nothing behind
    that a later start could mistake for a finished one."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> Path | None:
        """The finished export for `key`, or None."""
        folder = self.folder(key)
        return folder if (folder / META_FILE).is_file() else None

    def meta(self, key: str) -> dict[str, Any]:
        data = json.loads((self.folder(key) / META_FILE).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{self.folder(key) / META_FILE} is not a JSON object")
        return data

    def store(self, key: str, meta: dict[str, Any], write: Callable[[Path], None]) -> Path:
        """Runs `write(tmp_folder)`, records `meta`, then moves the folder into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            write(tmp)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
            final = self.folder(key)
            try:
                os.replace(tmp, final)
            except OSError:
                # Another replica finished the same export first: same key, same content; a
                # process may already be reading that one, so it stays.
                if self.lookup(key) is None:
                    raise
            return final
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def discard(self, key: str) -> None:
        shutil.rmtree(self.folder(key), ignore_errors=True)

    def entries(self) -> Iterable[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / META_FILE).is_file())
