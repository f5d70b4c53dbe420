"""Which free llama.cpp slot a joining prompt gets, and how much of its cached prefix it keeps."""

from __future__ import annotations

import pytest

from llmops_generation.adapters.llamacpp_slots import Claim, SlotPool, common_prefix

pytestmark = pytest.mark.unit


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix((7,), (8,)) == 0


def test_the_longest_shared_prefix_wins_and_keeps_two_tokens_to_feed() -> None:
    pool = SlotPool(3, reuse=True)
    for _ in range(3):
        pool.acquire([])
    pool.release(0, [1, 2, 3, 4])
    pool.release(1, [1, 2, 3, 4, 5, 6, 7])
    pool.release(2, [9, 9])
    assert pool.acquire([1, 2, 3, 4, 5, 6, 8]) == Claim(slot=1, held=7, keep=5)
    # A prompt equal to a cached prefix keeps all but its last two tokens.
    assert pool.acquire([1, 2, 3, 4]) == Claim(slot=0, held=4, keep=2)
    assert len(pool) == 1 and pool.held(2) == (9, 9)


def test_without_a_shared_prefix_an_empty_slot_then_the_least_recently_freed() -> None:
    pool = SlotPool(3, reuse=True)
    for _ in range(3):
        pool.acquire([])
    pool.release(2, [5, 6])
    pool.release(0, [7, 8])
    pool.release(1)
    assert pool.acquire([1, 2]) == Claim(slot=1, held=0, keep=0)
    assert pool.acquire([1, 2]) == Claim(slot=2, held=2, keep=0)  # freed before slot 0
    assert pool.acquire([7, 8, 9], reuse=False) == Claim(slot=0, held=2, keep=0)
    with pytest.raises(RuntimeError, match="no free slot"):
        pool.acquire([1])


def test_fresh_pool_hands_out_slots_in_order_and_clear_forgets() -> None:
    pool = SlotPool(2, reuse=True)
    assert [pool.acquire([1]).slot, pool.acquire([1]).slot] == [0, 1]
    pool.release(1, [1, 2, 3])
    pool.release(0, [1, 2, 3])
    pool.clear()
    assert pool.held(0) == pool.held(1) == ()
    assert pool.acquire([1, 2, 3]).keep == 0


def test_with_reuse_off_nothing_is_remembered() -> None:
    pool = SlotPool(1, reuse=False)
    pool.acquire([1, 2])
    pool.release(0, [1, 2])
    assert pool.held(0) == ()
    assert pool.acquire([1, 2]) == Claim(slot=0, held=0, keep=0)


def test_among_equal_prefixes_the_slot_that_keeps_running_slots_consecutive_wins() -> None:
    # llama.cpp runs a step as one batch only while its rows' slot ids rise by one.
    pool = SlotPool(4, reuse=False)
    for _ in range(4):
        pool.acquire([])
    pool.release(3)
    pool.release(1)  # running: 0 and 2
    assert pool.acquire([5]).slot == 1  # fills the gap, though slot 3 was freed first
    assert pool.acquire([5]).slot == 3
    reuse = SlotPool(4, reuse=True)
    for _ in range(4):
        reuse.acquire([])
    reuse.release(3, [1, 2, 3])
    reuse.release(1, [7, 7])
    # A longer shared prefix still wins over keeping the slots consecutive.
    assert reuse.acquire([1, 2, 3, 4]) == Claim(slot=3, held=3, keep=2)
