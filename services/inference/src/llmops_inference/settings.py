"""Inference settings (prefix LLMOPS_INFERENCE_); the generation backend is any TGI-API server."""

from __future__ import annotations

import os
import secrets
import socket
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from llmops_inference.domain.refusal import AnswerPolicies, AnswerPolicy
from llmops_kit import ports
from llmops_kit.settings import ServiceSettings, service_config


def default_replica_id() -> str:
    """hostname-pid-random: unique per process, also for two replicas on one host."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class TgiBackend(BaseModel):
    """The local generation server by default; a TGI / vLLM / SGLang endpoint in production."""

    url: str = Field(default_factory=lambda: ports.local_url("LLMOPS_GENERATION_PORT"))
    token: SecretStr | None = None
    # For the project's generation server's /admin routes (loading LoRA versions). Default:
    # the platform admin key (LLMOPS_ADMIN_KEY; DEV_ADMIN_KEY in development mode).
    admin_key: SecretStr | None = None
    timeout_seconds: float = Field(default=60.0, gt=0)
    attempts: int = Field(default=3, ge=1)
    backoff_seconds: float = Field(default=0.5, ge=0)
    # Sent as TGI's `stop` with every answer: a small model that goes on past its answer
    # writes the prompt's next "Question:" (measured: services/inference/README.md).
    stop: list[str] = Field(default_factory=lambda: ["\nQuestion:", "\nSources:"],
                            max_length=4)


class AnswerPolicySettings(BaseModel):
    """When the answer is "the documents do not cover this" (domain/refusal.py); null: never."""

    min_retrieval_score: float | None = Field(default=0.2, ge=-1.0, le=1.0)
    min_groundedness: float | None = Field(default=None, ge=0.0, le=1.0)
    min_term_coverage: float | None = Field(default=0.5, ge=0.0, le=1.0)
    # What answers a covered question (domain/extractive.py): the model, a sentence copied
    # from the passages, or the model unless the passages do not support its answer.
    answer_mode: Literal["generative", "extractive", "hybrid"] = "hybrid"
    # Refuse when no sentence of the passages is this close (cosine) to the question
    # (domain/refusal.py `weak_answer`; extractive and hybrid modes).
    min_sentence_similarity: float | None = Field(default=0.38, ge=-1.0, le=1.0)


class AnswerPoliciesSettings(BaseModel):
    """LLMOPS_INFERENCE_ANSWER_POLICIES as JSON: a default and per-tenant overrides, e.g.
    {"default": {"min_retrieval_score": 0.3}, "tenants": {"acme": {"min_groundedness": 0.5}}};
    a tenant's fields not given are the default's."""

    default: AnswerPolicySettings = Field(default_factory=AnswerPolicySettings)
    tenants: dict[str, dict[str, float | str | None]] = Field(default_factory=dict)

    def policies(self) -> AnswerPolicies:
        base = self.default.model_dump()
        tenants = {name: AnswerPolicy(**AnswerPolicySettings(**{**base, **o}).model_dump())
                   for name, o in self.tenants.items()}
        return AnswerPolicies(AnswerPolicy(**base), tenants)


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_INFERENCE_")

    service_name: str = "inference"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("inference"))
    generation: TgiBackend = Field(default_factory=TgiBackend)
    embedding_address: str = Field(default_factory=lambda: ports.service_address("embedding"))
    vector_store_address: str = Field(
        default_factory=lambda: ports.service_address("vector-store"))
    registry_address: str = Field(
        default_factory=lambda: ports.service_address("model-registry"))
    safety_address: str = Field(default_factory=lambda: ports.service_address("safety"))
    dependency_timeout_seconds: float = Field(default=10.0, gt=0)
    default_model_alias: str = "production"
    default_model_name: str = "smollm2-135m-instruct"
    default_prompt_name: str = "rag-answer"
    default_prompt_label: str = "production"
    default_top_k: int = Field(default=4, ge=1, le=20)
    default_max_new_tokens: int = Field(default=256, ge=1)
    cache_entries: int = Field(default=1024, ge=0)
    cache_ttl_seconds: float = Field(default=600.0, gt=0)
    consumer_group: str = "inference"
    # After each answer, in the background: the question's vector, retrieval strength and
    # groundedness (one embedding call; off: the event carries none of them).
    quality_enabled: bool = True
    # Only the groundedness part (sentences against the passages).
    groundedness_enabled: bool = True
    # A sentence is supported when its best cosine to a cited passage reaches this; measured
    # with bench/groundedness_threshold.py (README "Groundedness").
    groundedness_threshold: float = Field(default=0.30, ge=-1.0, le=1.0)
    quality_timeout_seconds: float = Field(default=10.0, gt=0)
    # Hybrid answer mode: the share of a generated answer's sentences that must be supported
    # (at groundedness_threshold) for it to be kept instead of the extracted sentence.
    hybrid_min_groundedness: float = Field(default=0.5, ge=0.0, le=1.0)
    # Extractive and hybrid modes: sentences are chosen from the first this many passages.
    extractive_passages: int = Field(default=3, ge=1, le=20)
    # Estimated tokens of passage text in the prompt (domain/context.py; 0: no limit).
    context_token_budget: int = Field(default=1200, ge=0)
    # Estimated tokens of passage text the prompt shows after the question-focused cut
    # (domain/focus.py: the passages' sentences that share most with the question); 0: off.
    context_focus_tokens: int = Field(default=240, ge=0)
    answer_policies: AnswerPoliciesSettings = Field(default_factory=AnswerPoliciesSettings)
    # InferenceCompleted events being built or published at once; more are dropped (counted).
    events_max_in_flight: int = Field(default=1000, ge=1)
    # Names this process's own consumer group for alias changes (see alias_consumer_group).
    replica_id: str = Field(default_factory=default_replica_id, min_length=1)

    def alias_consumer_group(self) -> str:
        """Every replica must see every ModelAliasChanged (each caches resolutions), so each
        consumes with a group of its own instead of sharing one."""
        return f"{self.consumer_group}-{self.replica_id}"
