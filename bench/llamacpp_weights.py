"""llama.cpp's own step time and next-token fidelity for the shipped GGUF file and copies of it.

The shipped SmolLM2 file is Q4_1; the generation server serves a Q8_0 copy where the CPU has
llama.cpp's Q8_0 matrix kernels (adapters/llamacpp_weights.py). This bench makes, with
llama.cpp's own quantizer, a Q8_0, a float16 and a Q4_0 copy in a temporary folder and prints
for each, in one run:

- the median time of one `llama_decode` of 1 and of 8 sequences' next tokens (after a 10-token
  prompt each; --steps steps, the same for every file), in-process, no server;
- over the sample corpus' first --tokens tokens, teacher-forced: how often its next-token choice
  agrees with the file's, and its mean negative log-likelihood of the corpus' next tokens.

    uv run --frozen python bench/llamacpp_weights.py [--steps 48] [--tokens 1000] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from llmops_generation.adapters.llamacpp_model import Entry, LlamaCppModel, backend
from llmops_generation.adapters.llamacpp_weights import build_features, extra_buffers
from llmops_generation.bootstrap import default_spec
from llmops_generation.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "samples" / "corpus"


def step_ms(path: Path, rows: int, steps: int, threads: int, extra: bool) -> float:
    model = LlamaCppModel(path, slots=8, ctx_per_slot=1024, n_batch=2048, threads=threads,
                          threads_batch=threads, extra_buffers=extra)
    try:
        model.decode([Entry(100 + p + s, p, s, p == 9) for s in range(rows) for p in range(10)])
        times = []
        for i in range(steps):
            started = time.perf_counter()
            model.decode([Entry(200 + i, 10 + i, s, True) for s in range(rows)])
            times.append(time.perf_counter() - started)
        return 1000 * statistics.median(times)
    finally:
        model.close()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def corpus_logprobs(path: Path, ids: list[int], threads: int, extra: bool) -> np.ndarray:
    model = LlamaCppModel(path, slots=1, ctx_per_slot=len(ids) + 8, n_batch=len(ids) + 8,
                          threads=threads, threads_batch=threads, extra_buffers=extra)
    try:
        return log_softmax(model.decode([Entry(t, i, 0, True) for i, t in enumerate(ids)]))
    finally:
        model.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    lib = backend()
    settings = Settings()
    spec = default_spec(settings, frozenset())
    assert spec.gguf_file is not None
    source = spec.path / spec.gguf_file
    from transformers import AutoTokenizer

    from llmops_generation.adapters.loader import TransformersLoader

    folder = TransformersLoader(settings.models_dir).model_dir(spec)
    text = " ".join(p.read_text() for p in sorted(CORPUS.glob("*.md")))
    ids = AutoTokenizer.from_pretrained(folder)(text)["input_ids"][: args.tokens]
    extra, extra_reason = extra_buffers(settings.llamacpp_extra_buffers, build_features(lib))
    with tempfile.TemporaryDirectory() as tmp:
        files = {f"file ({source.name})": source}
        copies = (("Q8_0 copy", lib.LLAMA_FTYPE_MOSTLY_Q8_0), ("float16 copy", lib.LLAMA_FTYPE_MOSTLY_F16),
                  ("Q4_0 copy", lib.LLAMA_FTYPE_MOSTLY_Q4_0))
        for name, ftype in copies:
            params = lib.llama_model_quantize_default_params()
            params.ftype, params.allow_requantize, params.nthread = ftype, True, args.threads
            out = Path(tmp) / f"{name.split()[0]}.gguf"
            if lib.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
                raise SystemExit(f"llama.cpp could not make the {name}")
            files[name] = out
        reference = corpus_logprobs(source, ids, args.threads, extra)
        nxt = np.array(ids[1:])
        print(f"{len(ids)} corpus tokens, {args.steps} steps, {args.threads} threads; medians; "
              f"extra weight layouts {extra_reason}")
        for name, path in files.items():
            lp = reference if path == source else corpus_logprobs(path, ids, args.threads, extra)
            agree = float((lp.argmax(1) == reference.argmax(1)).mean())
            nll = float(-lp[np.arange(len(nxt)), nxt].mean())
            one = step_ms(path, 1, args.steps, args.threads, extra)
            eight = step_ms(path, 8, args.steps, args.threads, extra)
            print(f"{name:<44} 1 row {one:6.2f} ms | 8 rows {eight:6.2f} ms | next token agrees with "
                  f"the file {agree:.3f} | NLL {nll:.4f} | {path.stat().st_size / 2**20:6.1f} MiB")


if __name__ == "__main__":
    main()
