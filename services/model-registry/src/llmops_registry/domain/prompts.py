"""Prompt use cases: immutable template versions, movable labels, rendering.

Scoped like models (see models.py): a tenant's maintainer creates versions of a prompt name that
only that tenant sees, and its labels (`latest` and any given) shadow the shared ones for that
tenant only; shared versions and labels are the admin's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from llmops_registry.domain import audit as a
from llmops_registry.domain import templates
from llmops_registry.domain import validation as v
from llmops_registry.domain.audit import Auditor
from llmops_registry.domain.model import (
    PRODUCTION,
    SHARED,
    Actor,
    NewPromptVersion,
    Page,
    PointerChange,
    PointerMove,
    PromptVersion,
    Summary,
)
from llmops_registry.domain.models import Policy, scope_of
from llmops_registry.domain.outbox import OutboxRelay
from llmops_registry.domain.templates import TemplateDocument
from llmops_registry.ports import PromptStore

MAX_DESCRIPTION = 2000


class PromptRegistry:
    def __init__(self, store: PromptStore, relay: OutboxRelay, policy: Policy,
                 auditor: Auditor) -> None:
        self.store = store
        self.relay = relay
        self.policy = policy
        self.auditor = auditor

    def validate_new(self, name: str, template: str, description: str = "") -> NewPromptVersion:
        return NewPromptVersion(
            name=v.check_name(name, "prompt"),
            template=template,
            variables=templates.analyse(template, self.policy.limits.max_template_chars),
            description=v.check_text(description, "description", MAX_DESCRIPTION),
        )

    def _labels(self, labels: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(v.check_pointer(lb, "label", settable=True) for lb in labels))

    async def create(self, actor: Actor, new: NewPromptVersion, labels: Sequence[str] = (),
                     shared: bool = False) -> PromptVersion:
        scope = scope_of(actor, shared)
        checked = self._labels(labels)
        created = await self.store.create_prompt_version(new, actor, checked, scope=scope)
        if created is None:  # only seeding asks for only_if_absent
            raise RuntimeError("store skipped a prompt version it was not asked to skip")
        await self.auditor.record(actor, a.PROMPT_CREATE, f"{created.name}/v{created.version}",
                                  scope, None, {"version": created.version,
                                                "labels": sorted(created.labels)})
        await self.relay.flush()
        return created

    async def seed(self, actor: Actor, new: NewPromptVersion,
                   labels: Sequence[str]) -> PromptVersion | None:
        return await self.store.create_prompt_version(new, actor, self._labels(labels),
                                                      scope=SHARED, only_if_absent=True)

    async def get(self, tenant: str, name: str, version: int | None = None,
                  label: str | None = None) -> PromptVersion:
        v.check_name(name, "prompt")
        if version is not None:
            v.check_version(version)
        if label is not None:
            v.check_pointer(label, "label", settable=False)
        return await self.store.get_prompt_version(name, version, label, tenant=tenant)

    async def list_versions(self, tenant: str, name: str, page_size: int = 0,
                            page_token: str = "") -> Page[PromptVersion]:
        v.check_name(name, "prompt")
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.list_prompt_versions(name, size + 1,
                                                     v.decode_int_token(page_token),
                                                     tenant=tenant)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].version) if more else "")

    async def list_prompts(self, tenant: str, page_size: int = 0,
                           page_token: str = "") -> Page[Summary]:
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.list_prompts(size + 1, v.decode_str_token(page_token),
                                             tenant=tenant)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].name) if more else "")

    async def set_label(self, actor: Actor, name: str, label: str, version: int,
                        reason: str = "", shared: bool = False) -> PointerMove:
        v.check_name(name, "prompt")
        v.check_pointer(label, "label", settable=True)
        v.check_version(version)
        v.check_text(reason, "reason", v.MAX_REASON)
        scope = scope_of(actor, shared)
        move = await self.store.set_prompt_label(name, label, version, reason, actor,
                                                 scope=scope)
        if move.changed:
            await self.auditor.record(actor, a.LABEL_SET, f"{name}@{label}", scope,
                                      a.version_state(move.previous_version),
                                      a.version_state(move.version))
            await self.relay.flush()
        return move

    async def label_history(self, tenant: str, name: str, label: str = "", page_size: int = 0,
                            page_token: str = "") -> Page[PointerChange]:
        v.check_name(name, "prompt")
        if label:
            v.check_pointer(label, "label", settable=False)
        size = v.page_size(page_size, self.policy.limits)
        rows = await self.store.label_history(name, label or None, size + 1,
                                              v.decode_int_token(page_token), tenant=tenant)
        more = len(rows) > size
        rows = rows[:size]
        return Page(rows, v.encode_token(rows[-1].sequence) if more else "")

    async def render(self, tenant: str, name: str, variables: Mapping[str, str],
                     documents: Sequence[TemplateDocument] = (), version: int | None = None,
                     label: str | None = None) -> tuple[PromptVersion, str]:
        """Renders a version (default: the `production` label as `tenant` resolves it);
        returns it and the text."""
        if version is None and label is None:
            label = PRODUCTION
        prompt = await self.get(tenant, name, version, label)
        # A thread: a heavy template must not stall every other call on the event loop.
        text = await asyncio.to_thread(templates.render, prompt.template, variables, documents)
        return prompt, text
