"""What a fresh registry starts with: the shipped base model and the default RAG prompt."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmops_registry.domain.model import PRODUCTION, Actor, Lineage
from llmops_registry.domain.models import ModelRegistry
from llmops_registry.domain.prompts import PromptRegistry

log = logging.getLogger(__name__)

RAG_PROMPT_NAME = "rag-answer"

# For a small instruct model: short, with the citation format shown on a real id. `documents`
# comes from RenderPromptRequest.documents; a caller with pre-formatted text passes `context`.
RAG_TEMPLATE = """\
Answer the question using only the sources below. After each fact, cite its source id in \
square brackets, like [{{ documents[0].id if documents else "doc-id#0" }}]. If the sources do \
not contain the answer, say that you do not know.

Sources:
{% for doc in documents -%}
[{{ doc.id }}]{% if doc.title %} {{ doc.title }}{% endif %}
{{ doc.text }}

{% else -%}
{{ context | default("(no sources)") }}

{% endfor -%}
Question: {{ question }}
Answer:"""


@dataclass(frozen=True)
class SeedModel:
    name: str
    artifact_uri: str
    base_model: str
    format: str
    alias: str = PRODUCTION


async def seed(models: ModelRegistry, prompts: PromptRegistry, actor: Actor,
               model: SeedModel | None, rag_prompt: bool) -> None:
    """Idempotent: a model or prompt that already has versions is left alone (even if its
    `production` pointer was moved or deleted since), so restarts never add versions."""
    if model is not None:
        new = models.validate_new(model.name, model.artifact_uri, model.base_model, model.format,
                                  {"source": "shipped"}, Lineage())
        created = await models.seed(actor, new, model.alias)
        if created:
            log.info("registered %s v%d as %r", created.name, created.version, model.alias)
    if rag_prompt:
        new_prompt = prompts.validate_new(
            RAG_PROMPT_NAME, RAG_TEMPLATE,
            "Grounded answer with [id] citations; documents = retrieved chunks.")
        created_prompt = await prompts.seed(actor, new_prompt, [PRODUCTION])
        if created_prompt:
            log.info("created prompt %s v%d", created_prompt.name, created_prompt.version)
