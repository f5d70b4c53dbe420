"""The continuous batcher's scheduling, stop conditions, cancellation and failures, on a fake model."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llmops_generation.domain.batcher import ContinuousBatcher
from llmops_generation.domain.errors import GenerationError, OverloadedError
from llmops_generation.domain.model import (
    ErrorEvent,
    FinishReason,
    GenerationRequest,
    SamplingParams,
    StoppingParams,
)

pytestmark = pytest.mark.unit


def request(text: str, max_new: int = 16, stop: tuple[str, ...] = (), **kw: object) -> GenerationRequest:
    return GenerationRequest(
        input_ids=tuple(ord(c) for c in text),
        sampling=SamplingParams(**kw),  # type: ignore[arg-type]
        stopping=StoppingParams(max_new_tokens=max_new, stop_sequences=stop),
    )


@pytest.fixture
async def make_batcher(decoder, codec):
    made: list[ContinuousBatcher] = []

    def make(
        max_batch_size: int = 8, max_prefill_tokens: int = 4096, max_waiting: int = 64
    ) -> ContinuousBatcher:
        b = ContinuousBatcher(
            decoder,
            codec,
            max_batch_size=max_batch_size,
            max_prefill_tokens=max_prefill_tokens,
            max_waiting=max_waiting,
        )
        b.start()
        made.append(b)
        return b

    yield make
    for b in made:
        await b.close(drain=False)


async def test_each_sequence_stops_on_its_own_condition(make_batcher, decoder) -> None:
    batcher = make_batcher()
    eos = batcher.submit(request("q|hi"))
    length = batcher.submit(request("q", max_new=3))
    stop = batcher.submit(request("q|hello world", stop=("lo w",)))
    done = await asyncio.gather(eos.collect(), length.collect(), stop.collect())

    assert done[0].finish.finish_reason is FinishReason.EOS_TOKEN
    assert done[0].finish.generated_text == "hi"
    assert [t.token.text for t in done[0].tokens] == ["h", "i", "</s>"]
    assert done[0].tokens[-1].token.special
    assert done[1].finish.finish_reason is FinishReason.LENGTH
    assert done[1].finish.generated_text == "aba"
    assert done[1].finish.generated_tokens == 3
    assert done[2].finish.finish_reason is FinishReason.STOP_SEQUENCE
    # TGI keeps the stop sequence in generated_text; stop_index says where it starts.
    assert done[2].finish.generated_text == "hello w"
    assert done[2].finish.stop_index == 3
    # All three started in the same step and left the batch one by one (the last one on the
    # loop's next turn, which frees its KV cache even with nothing else to do).
    await asyncio.sleep(0.05)
    assert decoder.calls[0].admitted == [1, 2, 3]
    assert decoder.calls[-1].batch == []
    evicted = [seq_id for c in decoder.calls for seq_id in c.evicted]
    assert sorted(evicted) == [1, 2, 3]


async def test_never_runs_more_than_max_batch_size(make_batcher, decoder) -> None:
    batcher = make_batcher(max_batch_size=2)
    answers = ["abc", "abcdef", "ab", "abcd", "a"]
    handles = [batcher.submit(request(f"{i}|{a}")) for i, a in enumerate(answers)]
    results = await asyncio.gather(*(h.collect() for h in handles))

    assert [r.finish.generated_text for r in results] == answers
    assert max(len(c.batch) for c in decoder.calls) == 2
    # Waiting requests joined as soon as a slot freed, while others were still decoding.
    joined_mid_flight = [c for c in decoder.calls[1:] if c.admitted and len(c.batch) > len(c.admitted)]
    assert joined_mid_flight


async def test_new_request_joins_a_running_batch_between_steps(make_batcher, decoder) -> None:
    batcher = make_batcher()
    long = batcher.submit(request("q", max_new=30))
    events = long.events()
    for _ in range(3):
        await anext(events)
    short = batcher.submit(request("q|xy"))
    result = await short.collect()
    assert result.finish.generated_text == "xy"
    admitted_at = next(i for i, c in enumerate(decoder.calls) if 2 in c.admitted)
    assert admitted_at >= 3 and 1 in decoder.calls[admitted_at].batch
    rest = [e async for e in events]
    assert rest[-1].finish.generated_tokens == 30


async def test_prefill_budget_splits_admission(make_batcher, decoder) -> None:
    batcher = make_batcher(max_prefill_tokens=10)
    handles = [batcher.submit(request("123456|a")) for _ in range(3)]
    await asyncio.gather(*(h.collect() for h in handles))
    assert [len(c.admitted) for c in decoder.calls if c.admitted] == [1, 1, 1]


async def test_cancelled_sequence_leaves_the_batch(make_batcher, decoder) -> None:
    batcher = make_batcher()
    handle = batcher.submit(request("q", max_new=1000))
    events = handle.events()
    await anext(events)
    await events.aclose()  # the client went away
    other = await batcher.submit(request("q|ok")).collect()
    assert other.finish.generated_text == "ok"
    assert any(1 in c.evicted for c in decoder.calls)
    assert 1 not in decoder.calls[-1].batch


async def test_cancel_before_admission_never_reaches_the_model(make_batcher, decoder) -> None:
    gate = threading.Event()
    decoder.step_gate = gate
    batcher = make_batcher(max_batch_size=1)
    first = batcher.submit(request("q|a"))
    queued = batcher.submit(request("q|b"))
    queued.cancel()
    gate.set()
    await first.collect()
    assert all(2 not in c.admitted for c in decoder.calls)


async def test_failed_step_fails_the_batch_and_the_next_request_still_runs(make_batcher, decoder) -> None:
    decoder.fail_on_step = 2
    batcher = make_batcher()
    doomed = batcher.submit(request("q", max_new=10))
    with pytest.raises(GenerationError, match="boom"):
        await doomed.collect()
    later = await batcher.submit(request("q|fine")).collect()
    assert later.finish.generated_text == "fine"
    assert batcher.healthy


async def test_queue_limit_is_overload(make_batcher, decoder) -> None:
    decoder.step_gate = threading.Event()
    batcher = make_batcher(max_batch_size=1, max_waiting=1)
    batcher.submit(request("q|a"))
    await asyncio.sleep(0.05)  # the first is admitted (blocked in its step)
    batcher.submit(request("q|b"))
    with pytest.raises(OverloadedError):
        batcher.submit(request("q|c"))
    decoder.step_gate.set()


async def test_control_op_waits_until_ready(make_batcher, decoder) -> None:
    batcher = make_batcher()
    running = batcher.submit(request("q|abcdef"))
    seen: list[tuple[int, int]] = []
    op = asyncio.create_task(
        batcher.run_exclusive(
            lambda: seen.append((batcher.running, batcher.steps)), ready=lambda: batcher.running == 0
        )
    )
    result = await running.collect()
    await op
    # It ran between steps, only once the 7-token sequence ("abcdef" + eos) had left the batch.
    assert result.finish.generated_tokens == 7
    assert seen == [(0, 7)]


async def test_close_without_drain_fails_what_is_pending(make_batcher, decoder) -> None:
    decoder.step_gate = threading.Event()
    batcher = make_batcher(max_batch_size=1)
    running = batcher.submit(request("q", max_new=100))
    waiting = batcher.submit(request("q|x"))
    await asyncio.sleep(0.05)
    closing = asyncio.create_task(batcher.close(drain=False))
    decoder.step_gate.set()
    await closing
    for handle in (running, waiting):
        events = [e async for e in handle.events()]
        assert isinstance(events[-1], ErrorEvent)
    with pytest.raises(OverloadedError):
        batcher.submit(request("q|y"))


async def test_prefill_details_and_top_tokens(make_batcher) -> None:
    batcher = make_batcher()
    req = request("ab|c", top_n_tokens=2)
    req = GenerationRequest(req.input_ids, req.sampling, req.stopping, decoder_input_details=True)
    result = await batcher.submit(req).collect()
    prefill = result.finish.prefill
    assert [p.text for p in prefill] == ["a", "b", "|", "c"]
    assert prefill[0].logprob is None and prefill[1].logprob == -1.0
    assert [t.text for t in result.tokens[0].top_tokens] == ["c", "c"]
