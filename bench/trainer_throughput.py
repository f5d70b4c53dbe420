"""Training worker throughput against a bare DeepSpeed loop, peak memory per ZeRO stage, and
the time from SIGKILL to the first training step after a restart.

1. Throughput: the worker (`launch.command`, progress lines) and a bare DeepSpeed loop run
   alternately on the same model (the shipped SmolLM2-135M), the same tokenised data, the same
   DeepSpeed configuration (built by the worker's `engine.ds_config`) and the same launcher
   (torchrun, OMP_NUM_THREADS=1 per process). Each run trains `--steps` optimizer steps; the
   first `--warmup` are dropped; a run's figure is the median tokens/s of the rest (non-pad
   input tokens over all processes / step wall time); `--repeats` pairs, the median of each
   side. Target: worker / bare >= 0.9.
2. Peak memory: the RSS high-water mark (VmHWM) of every worker process, sampled until it
   exits, for a full fine-tune on ZeRO 1, 2 and 3 with two processes (LoRA's optimizer state is
   too small for the stages to differ).
3. Restart: SIGKILL after the first checkpoint, start the same command again, time until the
   first "step" line after "resumed".

    uv run --frozen python bench/trainer_throughput.py [--steps 8] [--warmup 2] [--repeats 2]
        [--world-size 1] [--skip-throughput] [--skip-memory] [--skip-restart] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from llmops_trainer.worker import config, data, engine, launch, progress
from llmops_trainer.worker.testing import (
    base_model_dir,
    chat_records,
    kill_group,
    start,
    tiny_job,
    wait_for,
    write_jsonl,
)

TIMEOUT = 1800.0


def bare_loop(job_dir: Path, warmup: int) -> None:
    """Runs under torchrun: the plain transformers + PEFT + DeepSpeed loop on job.json's job."""
    import deepspeed
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    spec = config.load(job_dir)
    torch.manual_seed(spec.seed)
    model, tokenizer = engine.load_model(spec)
    records = data.read_jsonl(spec.train_path)
    examples, _ = data.prepare(records, tokenizer, spec.max_seq_len, spec.response_only_loss)
    schedule = data.Schedule(len(examples), spec.micro_batch_size, spec.gradient_accumulation, world,
                             spec.epochs, spec.seed, spec.max_steps)
    ds_engine, *_ = deepspeed.initialize(
        model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=engine.ds_config(spec, engine.choose_precision(), schedule.total_steps),
    )
    rates = []
    for step in range(1, schedule.total_steps + 1):
        started, tokens = time.perf_counter(), 0
        for micro in range(spec.gradient_accumulation):
            batch = data.collate([examples[i] for i in schedule.micro_batch(step, micro, rank)],
                                 int(tokenizer.pad_token_id))
            tensors = {k: torch.tensor(v) for k, v in batch.items()}
            loss = ds_engine(**tensors).loss
            ds_engine.backward(loss)
            ds_engine.step()
            tokens += int(tensors["attention_mask"].sum())
        rates.append(tokens * world / (time.perf_counter() - started))
    if rank == 0:
        (job_dir / "bare.json").write_text(json.dumps({"tokens_per_s": rates[warmup:]}))


def _bench_job(root: Path, name: str, model: Path, steps: int, world: int, **over: Any) -> Path:
    job = root / name
    settings: dict[str, Any] = {"world_size": world, "max_steps": steps, "max_seq_len": 128,
                                "micro_batch_size": 2, "eval_interval_steps": 10**6,
                                "checkpoint_interval_steps": 10**6}
    tiny_job(job, model, **{**settings, **over})
    write_jsonl(Path(json.loads((job / "job.json").read_text())["train_path"]), chat_records(64))
    return job


def _rss_watch(proc: Any) -> dict[int, int]:
    """VmHWM (bytes) of each descendant of `proc` that runs the worker, until `proc` exits."""
    peaks: dict[int, int] = {}
    parent = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            for child in parent.children(recursive=True):
                try:
                    if "llmops_trainer.worker" not in " ".join(child.cmdline()):
                        continue
                    for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                        if line.startswith("VmHWM:"):
                            peaks[child.pid] = max(peaks.get(child.pid, 0), int(line.split()[1]) * 1024)
                except (psutil.Error, OSError):
                    continue
        except psutil.Error:
            pass
        time.sleep(0.1)
    return peaks


def throughput(root: Path, model: Path, args: argparse.Namespace) -> dict[str, Any]:
    worker_runs, bare_runs = [], []
    for repeat in range(args.repeats):
        job = _bench_job(root, f"tp-worker-{repeat}", model, args.steps, args.world_size)
        proc = start(job, args.world_size)
        wait_for(job, lambda ev: any(e["type"] in ("done", "error") for e in ev), proc, TIMEOUT)
        proc.wait()
        steps = [e["tokens_per_s"] for e in progress.read(job) if e["type"] == "step"]
        worker_runs.append(statistics.median(steps[args.warmup:]))

        bare = _bench_job(root, f"tp-bare-{repeat}", model, args.steps, args.world_size)
        argv = launch.command(bare, args.world_size)
        argv = [*argv[:argv.index("-m", 6)], __file__, "--bare", str(bare), "--warmup", str(args.warmup)]
        log = (bare / "launcher.log").open("ab")
        import subprocess

        rc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT).returncode
        if rc != 0:
            raise SystemExit(f"bare loop failed; see {bare / 'launcher.log'}")
        bare_runs.append(statistics.median(json.loads((bare / "bare.json").read_text())["tokens_per_s"]))
        print(f"  repeat {repeat + 1}: worker {worker_runs[-1]:.1f} tok/s, bare {bare_runs[-1]:.1f} tok/s",
              flush=True)
    worker, bare_rate = statistics.median(worker_runs), statistics.median(bare_runs)
    return {"worker_tokens_per_s": worker, "bare_tokens_per_s": bare_rate, "ratio": worker / bare_rate,
            "worker_runs": worker_runs, "bare_runs": bare_runs}


def memory(root: Path, model: Path) -> dict[str, Any]:
    out = {}
    for stage in (1, 2, 3):
        job = _bench_job(root, f"mem-z{stage}", model, 2, 2, zero_stage=stage, lora=False,
                         learning_rate=1e-5)
        proc = start(job, 2)
        peaks = _rss_watch(proc)
        last = progress.read(job)[-1]
        if last["type"] != "done":
            raise SystemExit(f"ZeRO-{stage} memory run ended with {last}")
        mib = sorted(round(v / 2**20) for v in peaks.values())
        out[f"zero{stage}"] = {"per_process_mib": mib, "total_mib": sum(mib)}
        print(f"  ZeRO-{stage} full fine-tune, 2 processes: peak RSS {mib} MiB (sum {sum(mib)})", flush=True)
    return out


def restart(root: Path, model: Path, world: int) -> dict[str, Any]:
    job = _bench_job(root, "restart", model, 6, world, checkpoint_interval_steps=2)
    proc = start(job, world)

    def after_checkpoint(events: list[dict[str, Any]]) -> bool:
        return any(e["type"] == "checkpoint" for e in events)

    wait_for(job, after_checkpoint, proc, TIMEOUT)
    kill_group(proc)
    killed_at = time.monotonic()
    proc.wait()
    seen = len(progress.read(job))
    again = start(job, world)
    events = wait_for(job, lambda ev: any(e["type"] == "step" for e in ev[seen:]), again, TIMEOUT)
    seconds = time.monotonic() - killed_at
    kill_group(again)
    again.wait()
    resumed = next(e for e in events[seen:] if e["type"] == "resumed")
    print(f"  SIGKILL -> first step after restart: {seconds:.1f} s (resumed at step {resumed['step']})",
          flush=True)
    return {"seconds": seconds, "resumed_step": resumed["step"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--world-size", type=int, default=1, choices=(1, 2))
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-restart", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--bare", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        bare_loop(args.bare, args.warmup)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = base_model_dir()
    result: dict[str, Any] = {"precision": engine.choose_precision().dtype}
    with tempfile.TemporaryDirectory(prefix="trainer-bench-") as tmp:
        root = Path(tmp)
        print(f"throughput: LoRA r=4 on ZeRO-2, {args.world_size} process(es), 64 records, "
              f"max_seq_len 128, micro batch 2, {args.steps} steps ({args.warmup} warm-up), "
              f"{result['precision']}", flush=True)
        if not args.skip_throughput:
            result["throughput"] = tp = throughput(root, model, args)
            print(f"worker {tp['worker_tokens_per_s']:.1f} tok/s, bare DeepSpeed "
                  f"{tp['bare_tokens_per_s']:.1f} tok/s, ratio {tp['ratio']:.3f} (target >= 0.9)", flush=True)
        if not args.skip_memory:
            print("peak memory (VmHWM of each worker process):", flush=True)
            result["memory"] = memory(root, model)
        if not args.skip_restart:
            print("restart after SIGKILL:", flush=True)
            result["restart"] = restart(root, model, args.world_size)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main()
