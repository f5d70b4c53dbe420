"""Detoxify through its own code path, from a local checkpoint and config folder (no hub).

detoxify 0.5.4's `load_checkpoint` calls `config_class.from_pretrained(model_type)` with the
checkpoint's `arch.args.model_type` ("bert-base-uncased" in the released checkpoints) even
when `huggingface_config_path` is given, and then ignores that config. Offline, that lookup
fails. When `model_type` is not a local folder we point it at `config_dir` and hand Detoxify
the patched checkpoint in memory; everything else is Detoxify's own loading and predict().
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def checkpoint_source(checkpoint: Path, config_dir: Path) -> str | io.BytesIO:
    """What to pass as Detoxify(checkpoint=...): the path itself, or a patched copy."""
    import torch

    # A trusted, operator-supplied file: Detoxify itself loads it with weights_only=False.
    loaded = torch.load(checkpoint, map_location="cpu", weights_only=False)
    try:
        args = loaded["config"]["arch"]["args"]
        loaded["config"]["dataset"]["args"]["classes"]
        loaded["state_dict"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{checkpoint} is not a Detoxify checkpoint (missing {exc})") from exc
    if Path(str(args.get("model_type", ""))).is_dir():
        return str(checkpoint)
    args["model_type"] = str(config_dir)
    buffer = io.BytesIO()
    torch.save(loaded, buffer)
    buffer.seek(0)
    return buffer


class DetoxifyModel:
    name = "detoxify"

    def __init__(self, detox: Any, detail: str, batch_size: int = 32) -> None:
        self.detox = detox
        self.detail = detail
        self.batch_size = batch_size

    @classmethod
    def load(cls, checkpoint: Path, config_dir: Path, device: str = "cpu",
             batch_size: int = 32) -> DetoxifyModel:
        from detoxify import Detoxify

        detox = Detoxify(checkpoint=checkpoint_source(checkpoint, config_dir),
                         huggingface_config_path=str(config_dir), device=device)
        detail = (f"{checkpoint.name} ({type(detox.model).__name__}, "
                  f"classes: {', '.join(detox.class_names)})")
        return cls(detox, detail, batch_size)

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i:i + self.batch_size])
            raw: dict[str, Any] = self.detox.predict(batch)
            for j in range(len(batch)):
                # predict() squeezes a batch of one down to plain floats.
                out.append({name: float(v[j] if isinstance(v, list) else v)
                            for name, v in raw.items()})
        return out
