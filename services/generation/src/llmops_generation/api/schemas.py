"""Request bodies of TGI's HTTP API (tgi-openapi.json), parsed strictly: a wrong type is a 422.

Value rules with TGI's own messages (temperature > 0, ...) live in domain.validation; here only
what the contract's types and bounds say.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmops_generation.domain.errors import ValidationError
from llmops_generation.domain.validation import RawParameters

INT32_MAX = 2**31 - 1
Int32 = Annotated[int, Field(ge=0, le=INT32_MAX)]
AnyInt32 = Annotated[int, Field(le=INT32_MAX)]


class _Strict(BaseModel):
    # strict: "true" is not a boolean and 1 is not a string; extra fields are ignored as in TGI.
    model_config = ConfigDict(strict=True, extra="ignore")


class JsonGrammar(_Strict):
    type: Literal["json"]
    value: Any


class RegexGrammar(_Strict):
    type: Literal["regex"]
    value: str


class JsonSchemaConfig(_Strict):
    name: str | None = None
    # `schema` shadows a BaseModel attribute, hence the alias.
    json_schema: Any = Field(alias="schema")


class JsonSchemaGrammar(_Strict):
    type: Literal["json_schema"]
    value: JsonSchemaConfig


# TGI's GrammarType: the contract's discriminated union, so a malformed grammar is a 422 on
# every route (even /tokenize), while a well-formed one reaches validation, which refuses it.
Grammar = Annotated[JsonGrammar | RegexGrammar | JsonSchemaGrammar, Field(discriminator="type")]


class GenerateParameters(_Strict):
    adapter_id: str | None = None
    best_of: AnyInt32 | None = None
    decoder_input_details: bool = False
    # TGI's default is true (the contract says so too).
    details: bool = True
    do_sample: bool = False
    frequency_penalty: float | None = None
    grammar: Grammar | None = None
    max_new_tokens: Int32 | None = None
    repetition_penalty: float | None = None
    return_full_text: bool | None = None
    seed: Annotated[int, Field(ge=0)] | None = None
    stop: list[str] = Field(default_factory=list)
    temperature: float | None = None
    top_k: AnyInt32 | None = None
    top_n_tokens: Int32 | None = None
    top_p: float | None = None
    truncate: Annotated[int, Field(ge=0)] | None = None
    typical_p: float | None = None
    watermark: bool = False

    def check_contract_bounds(self) -> None:
        """The value bounds the contract itself declares (what /tokenize, which generates
        nothing, still has to reject); the generating routes check more, with TGI's messages."""
        positive = {
            "temperature": self.temperature,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
        }
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise ValidationError(f"`{name}` must be strictly positive")
        for name, value in (("top_p", self.top_p), ("typical_p", self.typical_p)):
            if value is not None and not 0 < value <= 1:
                raise ValidationError(f"`{name}` must be > 0.0 and <= 1.0")
        if self.frequency_penalty is not None and self.frequency_penalty <= -2:
            raise ValidationError("`frequency_penalty` must be > -2.0")
        if len(self.stop) > 4:
            raise ValidationError(f"`stop` supports up to 4 stop sequences. Given: {len(self.stop)}")

    def raw(self) -> RawParameters:
        return RawParameters(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            typical_p=self.typical_p,
            repetition_penalty=self.repetition_penalty,
            frequency_penalty=self.frequency_penalty,
            seed=self.seed,
            stop=tuple(self.stop),
            truncate=self.truncate,
            top_n_tokens=self.top_n_tokens,
            best_of=self.best_of,
            watermark=self.watermark,
            grammar=self.grammar.model_dump(by_alias=True) if self.grammar else None,
            decoder_input_details=self.decoder_input_details,
            adapter_id=self.adapter_id,
        )


class GenerateRequest(_Strict):
    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)


class CompatGenerateRequest(GenerateRequest):
    stream: bool = False


class TextChunk(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: str


class ImageChunk(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


class Message(_Strict):
    role: str
    content: str | list[Annotated[TextChunk | ImageChunk, Field(discriminator="type")]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class StreamOptions(_Strict):
    include_usage: bool | None = None


class ChatRequest(_Strict):
    messages: list[Message]
    model: str | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: list[float] | None = None
    logprobs: bool | None = None
    top_logprobs: Int32 | None = None
    max_tokens: Int32 | None = None
    n: Int32 | None = None
    seed: Annotated[int, Field(ge=0)] | None = None
    stop: list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    tool_prompt: str | None = None
