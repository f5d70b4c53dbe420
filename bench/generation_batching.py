"""Tokens per second of the generation server: 1 client vs N concurrent clients (dynamic batching).

Starts `python -m llmops_generation` on a free port (or uses --url), sends the same prompt set
greedily with max_new_tokens 64, first one request at a time, then N at once, and prints
tokens/s for both and their ratio (median of --rounds). Target: ratio >= 4 with 8 clients.
For reference it also runs bare transformers `generate()` in this process (same model folder,
same dtype) single-stream and as one left-padded batch of N; skip that with --no-bare.

    uv run python bench/generation_batching.py [--clients 8] [--rounds 3] [--dtype auto|bfloat16|float32|int8]
    uv run python bench/generation_batching.py --url http://127.0.0.1:8090
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

# Plain-text openings that this model continues for the full 64 tokens under greedy decoding
# (instructions often end after a few tokens, which would measure HTTP overhead instead).
PROMPTS = [
    "Once upon a time, in a small village by the sea,",
    "The history of the Roman Empire begins",
    "Here is a list of fruits: apple, banana,",
    "def quicksort(arr):",
    "In the year 2150, humanity had finally",
    "Ingredients:\n- 2 cups flour\n-",
    "The theory of relativity, proposed by Albert Einstein,",
    "Photosynthesis is the process by which",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    dtype: str, port: int, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], float]:
    env = {
        **os.environ,
        **(extra_env or {}),
        "LLMOPS_GENERATION_PORT": str(port),
        "LLMOPS_GENERATION_DTYPE": dtype,
        "LLMOPS_GENERATION_MAX_BATCH_SIZE": "8",
        "HF_HUB_OFFLINE": "1",
    }
    started = time.perf_counter()
    # The server's log goes to a file: a pipe nobody reads blocks the server once it fills.
    with tempfile.NamedTemporaryFile(prefix=f"generation-{port}-", suffix=".log", delete=False) as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llmops_generation"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - started < 300:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {Path(log.name).read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not become healthy in 300 s")


async def one(client: httpx.AsyncClient, url: str, prompt: str, max_new: int) -> int:
    r = await client.post(
        f"{url}/generate",
        json={"inputs": prompt, "parameters": {"max_new_tokens": max_new, "details": True}},
        timeout=600,
    )
    r.raise_for_status()
    return int(r.json()["details"]["generated_tokens"])


async def sequential(url: str, prompts: list[str], max_new: int) -> float:
    async with httpx.AsyncClient() as client:
        start = time.perf_counter()
        tokens = 0
        for p in prompts:
            tokens += await one(client, url, p, max_new)
        return tokens / (time.perf_counter() - start)


async def concurrent(url: str, prompts: list[str], max_new: int) -> float:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(prompts))) as client:
        start = time.perf_counter()
        counts = await asyncio.gather(*(one(client, url, p, max_new) for p in prompts))
        return sum(counts) / (time.perf_counter() - start)


def bare_generate(dtype: str, prompts: list[str], max_new: int) -> tuple[float, float]:
    """tokens/s of transformers generate(): one prompt at a time, then all as one batch."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmops_generation.adapters.loader import TransformersLoader, quantize_int8
    from llmops_generation.bootstrap import default_spec
    from llmops_generation.domain.numerics import choose_format, read_cpu_flags
    from llmops_generation.settings import Settings

    settings = Settings(dtype=dtype)
    spec = default_spec(settings, read_cpu_flags())
    fmt = choose_format(spec.dtype, frozenset())
    folder = TransformersLoader(settings.models_dir).model_dir(spec)
    tok = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, fmt.torch_dtype)).eval()
    if fmt.quantized:
        model = quantize_int8(model)

    def run(batch: list[str]) -> int:
        enc = tok(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id
            )
        new = out[:, enc.input_ids.shape[1] :]
        return int((new != tok.pad_token_id).sum())

    run(prompts[:1])  # warm-up
    start = time.perf_counter()
    tokens = sum(run([p]) for p in prompts)
    single = tokens / (time.perf_counter() - start)
    start = time.perf_counter()
    tokens = run(prompts)
    return single, tokens / (time.perf_counter() - start)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="use a running server instead of starting one")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32", "int8"])
    ap.add_argument("--no-bare", action="store_true", help="skip the bare transformers reference")
    args = ap.parse_args()
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.clients)]

    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc, load_s = start_server(args.dtype, port)
        url = f"http://127.0.0.1:{port}"
        print(f"server ({args.dtype}) healthy after {load_s:.1f} s (process start + model load)")
    try:
        async with httpx.AsyncClient() as client:
            await one(client, url, prompts[0], 4)  # warm-up
        singles, batched = [], []
        for r in range(args.rounds):
            singles.append(await sequential(url, prompts, args.max_new_tokens))
            batched.append(await concurrent(url, prompts, args.max_new_tokens))
            print(
                f"round {r + 1}: 1 client {singles[-1]:.1f} tok/s, "
                f"{args.clients} clients {batched[-1]:.1f} tok/s"
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    single, multi = statistics.median(singles), statistics.median(batched)
    print(f"server 1 client:  {single:.1f} tok/s (median of {args.rounds})")
    print(f"server {args.clients} clients: {multi:.1f} tok/s")
    print(f"ratio {args.clients} clients / 1 client: {multi / single:.2f}x (target >= 4)")
    if not args.no_bare and args.url is None:
        bare_single, bare_batch = bare_generate(args.dtype, prompts, args.max_new_tokens)
        print(
            f"bare transformers generate(): 1 prompt {bare_single:.1f} tok/s, "
            f"batch of {args.clients} {bare_batch:.1f} tok/s"
        )
        print(
            f"server / bare: single {single / bare_single:.2f}x, {args.clients} clients "
            f"{multi / bare_batch:.2f}x"
        )


if __name__ == "__main__":
    asyncio.run(main())
