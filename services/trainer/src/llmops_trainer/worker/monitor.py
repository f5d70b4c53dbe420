"""Evaluation bookkeeping: the best step by validation loss and overfitting detection.

Overfitting: the validation loss rose at each of the last `patience` evaluations while the
training loss (mean of the step losses since the previous evaluation) fell at each of them.
Both conditions together tell memorising apart from a noisy or too-high learning rate, where
both losses rise. Detection stops the job early when patience > 0 (0 turns it off).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EvalPoint:
    step: int
    train_loss: float
    val_loss: float


@dataclass
class Monitor:
    patience: int
    history: list[EvalPoint] = field(default_factory=list)
    best_step: int = 0
    best_val_loss: float = math.inf

    def record(self, step: int, train_loss: float, val_loss: float) -> tuple[bool, bool]:
        """Adds an evaluation; returns (is_new_best, overfitting)."""
        self.history.append(EvalPoint(step, train_loss, val_loss))
        improved = math.isfinite(val_loss) and val_loss < self.best_val_loss
        if improved:
            self.best_step, self.best_val_loss = step, val_loss
        return improved, self.overfitting()

    def overfitting(self) -> bool:
        if self.patience <= 0 or len(self.history) <= self.patience:
            return False
        window = self.history[-(self.patience + 1) :]
        pairs = list(itertools.pairwise(window))
        val_rising = all(b.val_loss > a.val_loss for a, b in pairs)
        train_falling = all(b.train_loss < a.train_loss for a, b in pairs)
        return val_rising and train_falling

    def state(self) -> dict[str, Any]:
        return {
            "patience": self.patience,
            "best_step": self.best_step,
            "best_val_loss": self.best_val_loss,
            "history": [[p.step, p.train_loss, p.val_loss] for p in self.history],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Monitor:
        monitor = cls(int(state["patience"]))
        monitor.best_step = int(state["best_step"])
        monitor.best_val_loss = float(state["best_val_loss"])
        monitor.history = [EvalPoint(int(s), float(t), float(v)) for s, t, v in state["history"]]
        return monitor


class RunningMean:
    """Mean of the training losses since the last reset (the train side of an evaluation)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def take(self) -> float:
        mean = self.total / self.count if self.count else math.nan
        self.total, self.count = 0.0, 0
        return mean
