"""TGI's request validation: the same rules and, where TGI has one, the same message."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from llmops_generation.domain.errors import ValidationError
from llmops_generation.domain.model import GenerationRequest, SamplingParams, StoppingParams

# Seeds TGI reports fit an int64; sampling draws one when the request leaves it out.
_MAX_SEED = 2**63 - 1
_seeds = random.SystemRandom()


@dataclass(frozen=True)
class Limits:
    max_input_tokens: int
    max_total_tokens: int
    default_max_new_tokens: int
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_best_of: int = 1


@dataclass(frozen=True)
class RawParameters:
    """GenerateParameters as the caller sent them (types checked, values not yet)."""

    max_new_tokens: int | None = None
    do_sample: bool = False
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    typical_p: float | None = None
    repetition_penalty: float | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: Sequence[str] = ()
    truncate: int | None = None
    top_n_tokens: int | None = None
    best_of: int | None = None
    watermark: bool = False
    grammar: object | None = None
    decoder_input_details: bool = False
    adapter_id: str | None = None


def _check_sampling(p: RawParameters, limits: Limits) -> SamplingParams:
    if p.best_of is not None and not 0 < p.best_of <= limits.max_best_of:
        raise ValidationError(f"`best_of` must be > 0 and <= {limits.max_best_of}. Given: {p.best_of}")
    if p.temperature is not None and p.temperature <= 0:
        raise ValidationError("`temperature` must be strictly positive")
    if p.repetition_penalty is not None and p.repetition_penalty <= 0:
        raise ValidationError("`repetition_penalty` must be strictly positive")
    for name, value in (("frequency_penalty", p.frequency_penalty), ("presence_penalty", p.presence_penalty)):
        # The contract makes -2.0 itself invalid (exclusiveMinimum); OpenAI caps both at 2.0.
        if value is not None and not -2.0 < value <= 2.0:
            raise ValidationError(f"`{name}` must be > -2.0 and <= 2.0")
    for name, value in (("top_p", p.top_p), ("typical_p", p.typical_p)):
        if value is not None and not 0.0 < value <= 1.0:
            raise ValidationError(f"`{name}` must be > 0.0 and <= 1.0")
    if p.top_k is not None and p.top_k <= 0:
        raise ValidationError("`top_k` must be strictly positive")
    top_n = p.top_n_tokens or 0
    if not 0 <= top_n <= limits.max_top_n_tokens:
        raise ValidationError(
            f"`top_n_tokens` must be >= 0 and <= {limits.max_top_n_tokens}. Given: {p.top_n_tokens}"
        )
    if p.seed is not None and not 0 <= p.seed <= _MAX_SEED:
        raise ValidationError(f"`seed` must be >= 0 and <= {_MAX_SEED}")
    if p.watermark:
        raise ValidationError("`watermark` is not supported by this server")
    if p.grammar is not None:
        raise ValidationError("`grammar` is not supported by this server")

    top_p = None if p.top_p == 1.0 else p.top_p
    typical_p = None if p.typical_p == 1.0 else p.typical_p
    temperature = None if p.temperature == 1.0 else p.temperature
    # TGI samples whenever a warper is set, even without do_sample.
    do_sample = p.do_sample or any(v is not None for v in (temperature, p.top_k, top_p, typical_p))
    seed = p.seed
    if do_sample and seed is None:
        seed = _seeds.randint(1, _MAX_SEED)
    return SamplingParams(
        do_sample=do_sample,
        temperature=temperature,
        top_k=p.top_k,
        top_p=top_p,
        typical_p=typical_p,
        repetition_penalty=None if p.repetition_penalty == 1.0 else p.repetition_penalty,
        frequency_penalty=p.frequency_penalty or None,
        presence_penalty=p.presence_penalty or None,
        seed=seed if do_sample else None,
        top_n_tokens=top_n,
    )


def truncate_input(input_ids: Sequence[int], truncate: int | None, limits: Limits) -> tuple[int, ...]:
    if truncate is None:
        return tuple(input_ids)
    if not 0 < truncate <= limits.max_input_tokens:
        raise ValidationError(
            f"`truncate` must be strictly positive and less than {limits.max_input_tokens}. Given: {truncate}"
        )
    # TGI keeps the end of the prompt: it is what the continuation depends on.
    return tuple(input_ids[-truncate:])


def build_request(
    input_ids: Sequence[int], params: RawParameters, limits: Limits, *, stream: bool = False
) -> GenerationRequest:
    """Checks everything TGI checks and returns the request the batcher runs."""
    sampling = _check_sampling(params, limits)
    if stream and params.decoder_input_details:
        raise ValidationError("`decoder_input_details` == true is not supported when streaming tokens")
    stops = tuple(params.stop)
    if len(stops) > limits.max_stop_sequences:
        raise ValidationError(
            f"`stop` supports up to {limits.max_stop_sequences} stop sequences. Given: {len(stops)}"
        )
    if params.max_new_tokens is not None and params.max_new_tokens <= 0:
        raise ValidationError("`max_new_tokens` must be strictly positive")

    ids = truncate_input(input_ids, params.truncate, limits)
    if not ids:
        raise ValidationError("`inputs` cannot be empty")
    if len(ids) > limits.max_input_tokens:
        raise ValidationError(
            f"`inputs` must have less than {limits.max_input_tokens} tokens. Given: {len(ids)}"
        )
    room = limits.max_total_tokens - len(ids)
    max_new = params.max_new_tokens
    if max_new is None:
        max_new = min(limits.default_max_new_tokens, room)
    if len(ids) + max_new > limits.max_total_tokens:
        raise ValidationError(
            f"`inputs` tokens + `max_new_tokens` must be <= {limits.max_total_tokens}. "
            f"Given: {len(ids)} `inputs` tokens and {max_new} `max_new_tokens`"
        )
    return GenerationRequest(
        input_ids=ids,
        sampling=sampling,
        stopping=StoppingParams(max_new_tokens=max_new, stop_sequences=stops),
        adapter=params.adapter_id,
        decoder_input_details=params.decoder_input_details,
    )
