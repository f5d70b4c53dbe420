"""Admin routes (not part of TGI): load and unload full models and LoRA adapters at run time.

The registry/inference side calls these to put a newly fine-tuned version into service
without restarting the server; requests then select it by id (TGI's `adapter_id`, or the
chat request's `model`). Every route needs the platform admin key, and every path must lie
under the models root (api/admin_guard.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from llmops_generation.api.admin_guard import require_admin, under_models_root
from llmops_generation.domain.errors import ValidationError
from llmops_generation.domain.model import ModelSpec
from llmops_generation.domain.numerics import choose_format
from llmops_generation.domain.service import Engine, GenerationService

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


class LoadModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(min_length=1)
    path: Path
    gguf_file: str | None = None
    # None: the server's setting (LLMOPS_GENERATION_DTYPE); "auto": chosen from the CPU.
    dtype: Literal["auto", "bfloat16", "float32", "float16", "int8"] | None = None


class LoadAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter_id: str = Field(min_length=1)
    path: Path
    base_model: str | None = None


def _service(request: Request) -> GenerationService:
    service: GenerationService = request.app.state.service
    return service


def _path(request: Request, path: Path) -> Path:
    return under_models_root(path, request.app.state.settings.allowed_models_root)


def _engine_json(engine: Engine, default: str | None) -> dict[str, Any]:
    return {
        "model_id": engine.model_id,
        "path": str(engine.spec.path),
        "gguf_file": engine.spec.gguf_file,
        "dtype": engine.spec.dtype,
        "dtype_reason": engine.spec.dtype_reason,
        "default": engine.model_id == default,
        "adapters": sorted(engine.adapters),
        "running": engine.batcher.running,
        "waiting": engine.batcher.waiting,
    }


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    service = _service(request)
    return {"models": [_engine_json(e, service.default_model_id) for e in service.models()]}


@router.post("/models", status_code=201)
async def load_model(request: Request, body: LoadModel) -> dict[str, Any]:
    path = _path(request, body.path)
    if not path.exists():
        raise ValidationError(f"path {body.path} does not exist")
    if body.gguf_file is not None and Path(body.gguf_file).name != body.gguf_file:
        raise ValidationError("gguf_file must be a file name inside `path`")
    service = _service(request)
    if body.dtype is None:
        fmt = choose_format(request.app.state.settings.dtype, request.app.state.cpu_flags,
                            source="setting LLMOPS_GENERATION_DTYPE")
    else:
        fmt = choose_format(body.dtype, request.app.state.cpu_flags, source="admin load")
    spec = ModelSpec(model_id=body.model_id, path=path, gguf_file=body.gguf_file,
                     dtype=fmt.dtype, dtype_reason=fmt.reason)
    try:
        engine = await service.load_model(spec)
    except (OSError, ValueError) as exc:
        raise ValidationError(f"model {body.model_id!r} could not be loaded: {exc}") from exc
    return _engine_json(engine, service.default_model_id)


@router.delete("/models/{model_id:path}")
async def unload_model(request: Request, model_id: str) -> dict[str, str]:
    await _service(request).unload_model(model_id)
    return {"unloaded": model_id}


@router.get("/adapters")
async def list_adapters(request: Request) -> dict[str, Any]:
    service = _service(request)
    owners = service.adapters()
    engines = {e.model_id: e for e in service.models()}
    return {
        "adapters": [
            {"adapter_id": a, "base_model": m, "path": str(engines[m].adapters.get(a, ""))}
            for a, m in sorted(owners.items())
        ]
    }


@router.post("/adapters", status_code=201)
async def load_adapter(request: Request, body: LoadAdapter) -> dict[str, str]:
    path = _path(request, body.path)
    target = await _service(request).load_adapter(body.adapter_id, path, body.base_model)
    return {"adapter_id": body.adapter_id, "base_model": target.engine.model_id, "path": str(path)}


@router.delete("/adapters/{adapter_id:path}")
async def unload_adapter(request: Request, adapter_id: str) -> dict[str, str]:
    await _service(request).unload_adapter(adapter_id)
    return {"unloaded": adapter_id}
