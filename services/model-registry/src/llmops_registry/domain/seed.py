"""What a fresh registry starts with: the shipped base model and the default RAG prompt."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from llmops_registry.domain.model import PRODUCTION, Actor, Lineage
from llmops_registry.domain.models import ModelRegistry
from llmops_registry.domain.prompts import PromptRegistry

log = logging.getLogger(__name__)

RAG_PROMPT_NAME = "rag-answer"

# For a small instruct model (measured with bench/answer_quality.py, services/inference/README.md
# "Answer modes"): one short sentence that copies the answering source's words, the citation
# format shown on a one-shot example that is about nothing in any corpus (so it never leaks
# into an answer as a fact). `documents` comes from RenderPromptRequest.documents; a caller
# with pre-formatted text passes `context`.
RAG_TEMPLATE = """\
Answer the question from the sources below. Reply with one short sentence that copies the \
words of the source holding the answer, and cite that source's id in square brackets. If the \
sources do not contain the answer, say that you do not know.

Example:
[0] The cafeteria is open from 11:30 to 14:00 on weekdays.
Question: When is the cafeteria open?
Answer: The cafeteria is open from 11:30 to 14:00 on weekdays [0].

Sources:
{% for doc in documents -%}
[{{ doc.id }}]{% if doc.title %} {{ doc.title }}:{% endif %} {{ doc.text }}

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
