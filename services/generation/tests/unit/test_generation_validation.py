"""TGI's request validation rules and messages."""

from __future__ import annotations

import pytest

from llmops_generation.domain.errors import ValidationError
from llmops_generation.domain.validation import Limits, RawParameters, build_request

pytestmark = pytest.mark.unit

LIMITS = Limits(max_input_tokens=10, max_total_tokens=16, default_max_new_tokens=4)
IDS = list(range(1, 6))  # 5 prompt tokens


def build(ids=IDS, stream: bool = False, **params):
    return build_request(ids, RawParameters(**params), LIMITS, stream=stream)


def test_defaults_are_greedy_with_the_server_default_length() -> None:
    req = build()
    assert req.input_ids == tuple(IDS)
    assert req.stopping.max_new_tokens == 4
    assert not req.sampling.do_sample and req.sampling.seed is None
    assert req.sampling.is_plain_greedy


def test_default_length_never_exceeds_the_room_left() -> None:
    assert build(ids=list(range(1, 11))).stopping.max_new_tokens == 4
    tight = Limits(max_input_tokens=10, max_total_tokens=12, default_max_new_tokens=100)
    assert build_request(list(range(10)), RawParameters(), tight).stopping.max_new_tokens == 2


@pytest.mark.parametrize(
    ("ids", "params", "message"),
    [
        (list(range(11)), {}, "`inputs` must have less than 10 tokens. Given: 11"),
        (IDS, {"max_new_tokens": 12}, "`inputs` tokens + `max_new_tokens` must be <= 16. Given: 5"),
        ([], {}, "`inputs` cannot be empty"),
        (IDS, {"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
        (IDS, {"temperature": 0.0}, "`temperature` must be strictly positive"),
        (IDS, {"top_p": 1.5}, "`top_p` must be > 0.0 and <= 1.0"),
        (IDS, {"top_p": 0.0}, "`top_p` must be > 0.0 and <= 1.0"),
        (IDS, {"typical_p": 0.0}, "`typical_p` must be > 0.0"),
        (IDS, {"top_k": 0}, "`top_k` must be strictly positive"),
        (IDS, {"repetition_penalty": 0.0}, "`repetition_penalty` must be strictly positive"),
        (IDS, {"frequency_penalty": 3.0}, "`frequency_penalty` must be > -2.0"),
        (IDS, {"frequency_penalty": -2.0}, "`frequency_penalty` must be > -2.0"),
        (IDS, {"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
        (IDS, {"top_n_tokens": 6}, "`top_n_tokens` must be >= 0 and <= 5"),
        (IDS, {"truncate": 0}, "`truncate` must be strictly positive"),
        (IDS, {"truncate": 11}, "`truncate` must be strictly positive and less than 10"),
        (IDS, {"best_of": 2}, "`best_of` must be > 0 and <= 1"),
        (IDS, {"seed": 2**64}, "`seed` must be >= 0"),
        (IDS, {"watermark": True}, "`watermark` is not supported"),
        (IDS, {"grammar": {"type": "json", "value": {}}}, "`grammar` is not supported"),
    ],
)
def test_rejections_carry_tgi_messages(ids, params, message) -> None:
    with pytest.raises(ValidationError) as err:
        build(ids=ids, **params)
    assert message in err.value.message
    assert err.value.http_status == 422 and err.value.error_type == "validation"


def test_decoder_input_details_cannot_stream() -> None:
    with pytest.raises(ValidationError, match="not supported when streaming"):
        build(stream=True, decoder_input_details=True)
    assert build(decoder_input_details=True).decoder_input_details


def test_truncate_keeps_the_end_of_the_prompt() -> None:
    assert build(ids=list(range(1, 21)), truncate=3).input_ids == (18, 19, 20)


def test_a_warper_turns_sampling_on_and_draws_a_seed() -> None:
    for params in ({"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.9}, {"do_sample": True}):
        sampling = build(**params).sampling
        assert sampling.do_sample
        assert sampling.seed is not None and 0 < sampling.seed < 2**63
    assert build(do_sample=True, seed=42).sampling.seed == 42


def test_neutral_values_mean_no_processing() -> None:
    sampling = build(temperature=1.0, top_p=1.0, repetition_penalty=1.0).sampling
    assert sampling.is_plain_greedy and sampling.seed is None
