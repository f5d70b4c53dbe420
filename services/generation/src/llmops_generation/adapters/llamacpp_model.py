"""A GGUF model in llama.cpp (llama-cpp-python's low-level API): one context, one KV stream per slot.

Every running sequence owns a slot (llama.cpp's sequence id); `decode` feeds one llama_batch
that mixes the next token of every running slot with whole prompts of joining ones, so
llama.cpp computes them in one pass. `remove` drops a slot's KV cells (all of them, or the
tail after a prefix that a joining prompt reuses).
The context has a separate KV stream per slot (`kv_unified=False`): a row attends only to its
own cells, not to a shared buffer holding every other row's as well.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmops_generation.adapters.llamacpp_weights import build_features
from llmops_generation.adapters.llamacpp_weights import extra_buffers as choose_extra_buffers

log = logging.getLogger(__name__)

_backend_lock = threading.Lock()
_backend_ready = False


def default_threads() -> int:
    """The CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def backend() -> Any:
    """llama_cpp's low-level module, with llama.cpp's backend initialised once per process."""
    global _backend_ready
    import llama_cpp

    with _backend_lock:
        if not _backend_ready:
            # llama.cpp reports every tensor it loads on stderr; errors still come through.
            logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
            llama_cpp.llama_backend_init()
            _backend_ready = True
    return llama_cpp


@dataclass(frozen=True)
class Entry:
    """One token of a batch: `slot` is its sequence, `logits` whether its output is wanted."""

    token: int
    pos: int
    slot: int
    logits: bool


class LlamaCppModel:
    """Owns the llama.cpp model, context and batch buffer; not thread-safe (one caller)."""

    def __init__(
        self,
        gguf: Path,
        *,
        slots: int,
        ctx_per_slot: int,
        n_batch: int,
        threads: int,
        threads_batch: int,
        flash_attn: bool | None = None,
        extra_buffers: bool | None = None,
    ) -> None:
        """`flash_attn`: None lets llama.cpp decide (it enables it on CPU); `extra_buffers`: let
        llama.cpp re-lay weights out for its extra kernels (repacked layouts, AMX), None: the
        "auto" rule of llamacpp_weights.extra_buffers (off where AMX would serve)."""
        if not gguf.is_file():
            raise FileNotFoundError(f"GGUF file not found: {gguf}")
        lib = backend()
        self._lib = lib
        mparams = lib.llama_model_default_params()
        mparams.n_gpu_layers = 0
        if extra_buffers is None:
            extra_buffers = choose_extra_buffers("auto", build_features(lib))[0]
        mparams.use_extra_bufts = extra_buffers
        self._model = lib.llama_model_load_from_file(str(gguf).encode(), mparams)
        if not self._model:
            raise ValueError(f"llama.cpp could not load {gguf}")
        cparams = lib.llama_context_default_params()
        cparams.n_ctx = ctx_per_slot * slots
        cparams.n_batch = n_batch
        cparams.n_ubatch = min(n_batch, 512)
        cparams.n_seq_max = slots
        cparams.n_threads = threads
        cparams.n_threads_batch = threads_batch
        cparams.kv_unified = False
        cparams.flash_attn_type = {
            None: lib.LLAMA_FLASH_ATTN_TYPE_AUTO,
            True: lib.LLAMA_FLASH_ATTN_TYPE_ENABLED,
            False: lib.LLAMA_FLASH_ATTN_TYPE_DISABLED,
        }[flash_attn]
        cparams.no_perf = True
        self._ctx = lib.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            lib.llama_model_free(self._model)
            raise ValueError("llama.cpp could not create a context (KV cache too large for memory?)")
        self._mem = lib.llama_get_memory(self._ctx)
        self.vocab_size = int(lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self._model)))
        self.slots = slots
        self.ctx_per_slot = int(lib.llama_n_ctx_seq(self._ctx))
        self.n_batch = n_batch
        self.threads = (threads, threads_batch)
        self._batch = lib.llama_batch_init(n_batch, 0, 1)
        self._closed = False
        buf = ctypes.create_string_buffer(128)
        lib.llama_model_desc(self._model, buf, len(buf))
        # e.g. "llama ?B Q4_1": the architecture, size and the GGUF file's quantisation.
        self.description = buf.value.decode(errors="replace")

    def decode(self, entries: Sequence[Entry]) -> np.ndarray:
        """Runs `entries` (in n_batch chunks); the logits of those marked, in order: [n, vocab].

        llama.cpp gets them in slot order (stable, so each slot's tokens keep theirs). With a KV
        stream per slot it splits a batch into micro-batches wherever the slot ids stop rising
        by one (llama_batch_allocr::split_equal, sequential): 8 running rows in admission order
        such as slots 3,0,1,2,... became several graph runs, the one-row ones without the
        batched matrix kernels, and an 8-row step took 42-48 ms instead of 26-28 ms.
        """
        order = sorted(range(len(entries)), key=lambda i: entries[i].slot)
        if order != list(range(len(entries))):
            ranked = [entries[i] for i in order]
            logits = self._decode(ranked)
            # Marked rows came back in slot order: put them back in the caller's order.
            marked = [i for i in order if entries[i].logits]
            return logits[np.argsort(marked)]
        return self._decode(entries)

    def _decode(self, entries: Sequence[Entry]) -> np.ndarray:
        lib = self._lib
        out: list[np.ndarray] = []
        batch = self._batch
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start : start + self.n_batch]
            for i, e in enumerate(chunk):
                batch.token[i] = e.token
                batch.pos[i] = e.pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = e.slot
                batch.logits[i] = 1 if e.logits else 0
            batch.n_tokens = len(chunk)
            rc = lib.llama_decode(self._ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed ({rc}{': no KV space' if rc == 1 else ''})")
            wanted = sum(1 for e in chunk if e.logits)
            if wanted:
                # llama_get_logits: the marked tokens' rows, contiguous and in batch order; one
                # copy of them all instead of a copy per row and another to stack them.
                ptr = lib.llama_get_logits(self._ctx)
                out.append(np.ctypeslib.as_array(ptr, shape=(wanted, self.vocab_size)).copy())
        if not out:
            return np.empty((0, self.vocab_size), dtype=np.float32)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def remove(self, slot: int, start: int = 0) -> bool:
        """Drops `slot`'s KV cells from position `start` on; False when the memory cannot."""
        return bool(self._lib.llama_memory_seq_rm(self._mem, slot, start, -1))

    def clear(self) -> None:
        self._lib.llama_memory_clear(self._mem, True)

    def close(self) -> None:
        lib = self._lib
        if not self._closed:
            self._closed = True
            lib.llama_batch_free(self._batch)
            lib.llama_free(self._ctx)
            lib.llama_model_free(self._model)
