"""The raw batch consumer's offset arithmetic and the GC setting for high-volume processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from llmops_kit.batch_consumer import GC_THRESHOLDS, first_offsets, next_offsets, relax_gc

pytestmark = pytest.mark.unit


def rec(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord("t", partition, offset, 0, 0, None, b"", None, 0, 0, ())


def test_a_rewind_goes_to_the_first_record_of_either_batch_per_partition() -> None:
    ahead, behind = (rec(0, 5), rec(0, 6), rec(1, 9)), (rec(0, 7), rec(2, 3))
    assert first_offsets(ahead, behind) == {TopicPartition("t", 0): 5,
                                            TopicPartition("t", 1): 9,
                                            TopicPartition("t", 2): 3}


def test_a_commit_is_past_the_last_record_of_each_partition_of_the_batch() -> None:
    assert next_offsets((rec(0, 5), rec(0, 6), rec(1, 9))) == {TopicPartition("t", 0): 7,
                                                               TopicPartition("t", 1): 10}


@pytest.fixture
def gc_restored() -> Iterator[None]:
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_relax_gc_freezes_what_exists_and_collects_the_young_less_often(gc_restored: None
                                                                       ) -> None:
    relax_gc()
    assert gc.get_threshold() == GC_THRESHOLDS == (50_000, 20, 10)
    assert gc.get_freeze_count() > 1000  # the modules and objects of start-up
