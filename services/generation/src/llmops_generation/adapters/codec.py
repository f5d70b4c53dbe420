"""ports.TextCodec over a transformers (fast) tokenizer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmops_generation.domain.errors import TemplateError


class HFTextCodec:
    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._special = frozenset(int(i) for i in tokenizer.all_special_ids)
        self._texts: dict[int, str] = {}

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self._tok, "chat_template", None))

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok(text, add_special_tokens=add_special_tokens)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False))

    def token_text(self, token_id: int) -> str:
        text = self._texts.get(token_id)
        if text is None:
            text = self._texts[token_id] = self.decode([token_id])
        return text

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special

    def tokenize(self, text: str) -> list[tuple[int, str, int, int]]:
        enc = self._tok(text, return_offsets_mapping=True)
        return [
            (int(i), text[start:stop], int(start), int(stop))
            for i, (start, stop) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
        ]

    def render_chat(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not self.has_chat_template:
            raise TemplateError("the model has no chat template")
        try:
            rendered = self._tok.apply_chat_template(
                [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
            )
        except Exception as exc:  # jinja2 errors, raise_exception() in templates, bad types
            raise TemplateError(f"Template error: {exc}") from exc
        return str(rendered)
