"""The canary controller: analyses every due canary at its interval, in one registry replica.

Every replica runs the loop, but only the holder of the `canary-controller` lease (a row of the
registry's database, renewed each tick, taken over once it expires) analyses: two replicas
never judge the same window twice. A failure of one canary's check (observability down) is
logged and retried at the next tick; it is never a failed check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from datetime import UTC, datetime

from llmops_registry.domain.canary import Step
from llmops_registry.domain.model import Actor
from llmops_registry.domain.rollout import Rollouts
from llmops_registry.ports_rollout import CanaryMetrics, Lease

log = logging.getLogger(__name__)

LEASE = "canary-controller"
# The controller acts as the registry itself (audit log and alias history actor).
CONTROLLER = Actor("system", key_id="canary-controller")


def default_holder() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class CanaryController:
    def __init__(self, rollouts: Rollouts, metrics: CanaryMetrics, lease: Lease, *,
                 tick_seconds: float = 1.0, lease_seconds: float = 10.0,
                 holder: str | None = None, batch: int = 50) -> None:
        self.rollouts = rollouts
        self.metrics = metrics
        self.lease = lease
        self.tick = tick_seconds
        self.lease_seconds = lease_seconds
        self.holder = holder or default_holder()
        self.batch = batch
        self._task: asyncio.Task[None] | None = None

    async def run_once(self, now: datetime | None = None) -> list[Step]:
        """One tick: the steps taken (none when another replica holds the lease)."""
        now = now or datetime.now(UTC)
        due = await self.rollouts.store.due_canaries(now, self.batch)
        # The lease (a write) is only taken when there is work: an idle registry only reads.
        if not due or not await self.lease.acquire_lease(LEASE, self.holder,
                                                         self.lease_seconds):
            return []
        steps = []
        for canary in due:
            try:
                steps.append(await self.rollouts.run_check(canary, self.metrics, CONTROLLER, now))
            except Exception as exc:
                log.warning("canary %s/%s not analysed, retrying next tick: %s: %s",
                            canary.tenant, canary.name, type(exc).__name__, exc)
        return steps

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                log.warning("canary controller tick failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.tick)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="canary-controller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
