"""The training loop of one process (rank) of a job; see the package docstring for the contract."""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from llmops_trainer.worker import checkpoint, data, engine, summary
from llmops_trainer.worker.config import JobSpec
from llmops_trainer.worker.monitor import Monitor, RunningMean
from llmops_trainer.worker.progress import ProgressLog

log = logging.getLogger(__name__)


class Cancel:
    """SIGTERM/SIGINT set a flag; the loop stops at the next step boundary, or at the next
    batch of an evaluation pass (all ranks agree)."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


class EvalCancelled(Exception):
    """Every rank agreed to stop in the middle of an evaluation pass."""


class Trainer:
    def __init__(self, spec: JobSpec, job_dir: Path, rank: int, world_size: int) -> None:
        import torch

        self.spec, self.job_dir, self.rank, self.world = spec, job_dir, rank, world_size
        self.progress = ProgressLog(job_dir, enabled=rank == 0)
        self.ckpt_root = job_dir / "checkpoints"
        self.best_root = job_dir / "best"
        self.cancel = Cancel()
        self.precision = engine.choose_precision()
        torch.manual_seed(spec.seed)
        model, self.tokenizer = engine.load_model(spec)
        self.train_set, self.train_stats = self._examples(spec.train_path, pack=spec.packing)
        self.val_set, _ = self._examples(spec.validation_path, pack=False)
        self.schedule = data.Schedule(
            len(self.train_set), spec.micro_batch_size, spec.gradient_accumulation, world_size,
            spec.epochs, spec.seed, spec.max_steps,
        )
        if self.schedule.total_steps < 1:
            raise data.DataError(
                f"{len(self.train_set)} training sequences after tokenisation"
                f"{' and packing' if spec.packing else ''} are fewer than the "
                f"{spec.records_per_step} one optimizer step needs"
            )
        import deepspeed

        params = [p for p in model.parameters() if p.requires_grad]
        config = engine.ds_config(spec, self.precision, self.schedule.total_steps)
        self.engine, _, _, _ = deepspeed.initialize(
            model=model, model_parameters=params, config=config,
            lr_scheduler=engine.lr_scheduler(self.schedule.total_steps),
        )
        self.monitor = Monitor(spec.early_stopping_patience)
        self.running = RunningMean()
        self.pad_id = int(self.tokenizer.pad_token_id)

    def _examples(self, path: Path, pack: bool) -> tuple[list[data.Example], data.PrepareStats]:
        records = data.read_jsonl(path)
        examples, stats = data.prepare(
            records, self.tokenizer, self.spec.max_seq_len, self.spec.response_only_loss
        )
        if not examples:
            raise data.DataError(f"{path.name}: no record has a token to train on within max_seq_len")
        return (data.pack(examples, self.spec.max_seq_len) if pack else examples), stats

    def _tensors(self, examples: list[data.Example]) -> dict[str, Any]:
        import torch

        batch = data.collate(examples, self.pad_id)
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}

    def _all_sum(self, values: list[float]) -> list[float]:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return [float(v) for v in tensor]

    # --- resume ---------------------------------------------------------------------------
    def resume(self) -> int:
        step = checkpoint.latest_complete(self.ckpt_root)
        if step is None:
            return 0
        state = checkpoint.load(self.engine, self.ckpt_root, step, self.rank)
        self.monitor = Monitor.from_state(state["monitor"])
        self.running.total, self.running.count = state["running"]
        if self.rank == 0 and self.best_root.is_dir():
            # Bests exported after the checkpoint are replayed (same data, same RNG): drop them.
            for child in self.best_root.iterdir():
                if child.name.startswith("step-") and int(child.name[5:]) > step:
                    shutil.rmtree(child, ignore_errors=True)
        self.progress.write("resumed", step=step)
        return step

    # --- one optimizer step ---------------------------------------------------------------
    def train_step(self, step: int) -> tuple[float, float, float, bool]:
        """(mean loss over ranks, learning rate used, global tokens/s, cancel requested)."""
        started = time.perf_counter()
        lr = float(self.engine.get_lr()[0])
        self.engine.train()
        losses, tokens = 0.0, 0
        for micro in range(self.spec.gradient_accumulation):
            indices = self.schedule.micro_batch(step, micro, self.rank)
            batch = self._tensors([self.train_set[i] for i in indices])
            loss = self.engine(**batch).loss
            self.engine.backward(loss)
            self.engine.step()
            losses += float(loss.detach().float())
            tokens += int(batch["attention_mask"].sum())
        local = losses / self.spec.gradient_accumulation
        total_loss, total_tokens, cancels = self._all_sum([local, tokens, float(self.cancel.requested)])
        elapsed = time.perf_counter() - started
        return total_loss / self.world, lr, total_tokens / elapsed, cancels > 0

    # --- evaluation -----------------------------------------------------------------------
    def evaluate(self) -> float:
        """Token-weighted mean validation loss over all ranks' shards; EvalCancelled when a
        cancel came during the pass (a large validation set can take minutes on CPU)."""
        import torch

        self.engine.eval()
        loss_sum, count = 0.0, 0.0
        with torch.no_grad():
            for indices in data.eval_batches(
                len(self.val_set), self.spec.micro_batch_size, self.rank, self.world
            ):
                # Every rank runs the same number of batches, so all of them reach this
                # all-reduce together and leave the pass together (ZeRO-3 forwards are
                # collective: a rank that stopped alone would leave the others waiting).
                if self._all_sum([float(self.cancel.requested)])[0] > 0:
                    self.engine.train()
                    raise EvalCancelled
                weight = 1.0 if indices else 0.0
                batch = self._tensors([self.val_set[i] for i in (indices or [0])])
                loss = float(self.engine(**batch).loss.float())
                targets = float((batch["labels"][:, 1:] != data.IGNORE).sum())
                loss_sum += weight * loss * targets
                count += weight * targets
        total, n = self._all_sum([loss_sum, count])
        self.engine.train()
        return total / n if n else math.nan

    def export_best(self, step: int, val_loss: float) -> None:
        target = self.best_root / checkpoint.tag(step)
        if self.rank == 0:
            self.best_root.mkdir(parents=True, exist_ok=True)
        meta = {"step": step, "val_loss": val_loss, "job_id": self.spec.job_id}
        engine.export(self.engine.module, self.tokenizer, target, self.spec.lora, self.rank == 0, meta)
        if self.rank == 0:
            for child in self.best_root.iterdir():
                if child.name.startswith("step-") and child.name != target.name:
                    shutil.rmtree(child, ignore_errors=True)

    def save_checkpoint(self, step: int) -> None:
        self.ckpt_root.mkdir(parents=True, exist_ok=True)
        state = {
            "step": step,
            "monitor": self.monitor.state(),
            "running": [self.running.total, self.running.count],
        }
        checkpoint.save(self.engine, self.ckpt_root, step, state, self.rank, self.spec.lora)
        self.progress.write("checkpoint", step=step)

    # --- the job --------------------------------------------------------------------------
    def run(self) -> str:
        """Trains to the end, an early stop or a cancel; returns "done" or "cancelled"."""
        spec, total = self.spec, self.schedule.total_steps
        start = self.resume()
        started = time.perf_counter()
        early_stopped, last_step, trained_tokens = False, start, 0.0
        for step in range(start + 1, total + 1):
            loss, lr, tokens_per_s, cancelled = self.train_step(step)
            last_step = step
            self.running.add(loss)
            self.progress.write(
                "step", step=step, total_steps=total, epoch=self.schedule.epoch_of(step) + 1,
                loss=loss, learning_rate=lr, tokens_per_s=round(tokens_per_s, 2),
            )
            if cancelled:
                self.progress.write("cancelled", step=step, phase="train")
                return "cancelled"
            if step % spec.eval_interval_steps == 0 or step == total:
                try:
                    val_loss = self.evaluate()
                except EvalCancelled:
                    self.progress.write("cancelled", step=step, phase="eval")
                    return "cancelled"
                improved, overfitting = self.monitor.record(step, self.running.take(), val_loss)
                self.progress.write(
                    "eval", step=step, val_loss=val_loss,
                    perplexity=math.exp(val_loss) if val_loss < 700 else math.inf,
                    overfitting=overfitting,
                )
                if improved:
                    self.export_best(step, val_loss)
                if overfitting:
                    early_stopped = True
                    break
            if step % spec.checkpoint_interval_steps == 0 and step != total:
                self.save_checkpoint(step)
        self.finish(last_step, early_stopped, time.perf_counter() - started, trained_tokens)
        return "done"

    def finish(self, last_step: int, early_stopped: bool, seconds: float, _tokens: float) -> None:
        output = self.job_dir / "output"
        if self.monitor.best_step == 0:  # no finite validation loss: export the last weights
            self.export_best(last_step, math.nan)
        best = self.best_root / checkpoint.tag(self.monitor.best_step or last_step)
        fmt = "peft-lora" if self.spec.lora else "hf"
        if self.rank == 0:
            tmp = self.job_dir / ".output.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(best, tmp)
            summary.write(tmp, self, last_step, early_stopped, seconds, fmt)
            shutil.rmtree(output, ignore_errors=True)
            os.replace(tmp, output)
            best_loss = self.monitor.best_val_loss if self.monitor.best_step else None
            self.progress.write(
                "done", best_step=self.monitor.best_step or last_step, best_val_loss=best_loss,
                early_stopped=early_stopped, output_dir=str(output), output_format=fmt,
            )
