"""Trainer settings (env prefix LLMOPS_TRAINER_, plus the shared LLMOPS_* ones)."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import AliasChoices, BaseModel, Field, SecretStr, model_validator

from llmops_kit import ports, topics
from llmops_kit.settings import ServiceSettings, llmops_home, service_config
from llmops_trainer.domain.job import Defaults
from llmops_trainer.pipeline.settings import ContinuousSettings


def _home(*parts: str) -> Path:
    return llmops_home().joinpath(*parts)


class RegistrySettings(BaseModel):
    """Where trained versions are registered (and `name@version` bases resolved)."""

    address: str = Field(default_factory=lambda: ports.service_address("model-registry"))
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Unset: a short-lived maintainer key of the job's tenant is minted per call in the
    # platform key store. Set: this key is used for every call (a single-tenant deployment).
    api_key: SecretStr | None = None


class ShippedBase(BaseModel):
    """A base model that ships with the platform: its HF folder and its registry version."""

    path: Path
    registry_version: int = Field(default=1, ge=1)


def _shipped() -> dict[str, ShippedBase]:
    # The folder generation converts the bundled GGUF into (services/generation, models_dir).
    return {"smollm2-135m-instruct": ShippedBase(path=_home("models", "smollm2-135m-instruct"))}


class Settings(ServiceSettings):
    model_config = service_config("LLMOPS_TRAINER_")

    service_name: str = "trainer"
    grpc_port: int = Field(default_factory=lambda: ports.service_port("trainer"))
    database_url: str = Field(default_factory=lambda: f"sqlite:///{_home('data', 'trainer.db')}")
    # Under the generation server's default models root ($LLMOPS_HOME/models): a job's output is
    # registered as a file:// version there, and the server loads only from under that root.
    jobs_root: Path = Field(default_factory=lambda: _home("models", "trainer-jobs"))
    datasets_root: str = Field(
        default_factory=lambda: str(_home("artifacts", "datasets")),
        validation_alias=AliasChoices("datasets_root", "LLMOPS_DATASETS_ROOT"))
    # This replica's name: its RUNNING jobs are resumed at once when it starts again (others
    # wait for the lease to expire). Default `<host>:<grpc port>`: stable across restarts,
    # different for each replica of one host (`llmops up` gives replica N port + 100*N).
    replica_id: str = Field(default="", max_length=200)
    lease_seconds: float = Field(default=30.0, ge=2)
    poll_seconds: float = Field(default=1.0, gt=0)
    cancel_grace_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    # Replaces the worker's own launcher (llmops_trainer.worker.launch.command): an argv with
    # {job_dir}, {world_size} and {python} filled in, e.g. for a stand-in worker in tests.
    worker_command: list[str] | None = None
    worker_threads: int = Field(default=1, ge=1, description="OMP_NUM_THREADS per process")
    # Recorded with every registered version (lineage metadata `code_version`).
    code_version: str = Field(default="", validation_alias=AliasChoices(
        "code_version", "LLMOPS_TRAINER_CODE_VERSION", "LLMOPS_CODE_VERSION"))
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    base_models: dict[str, ShippedBase] = Field(default_factory=_shipped)
    # Values for what a SubmitJob leaves unset (zero): LLMOPS_TRAINER_DEFAULTS__<FIELD>, e.g.
    # LLMOPS_TRAINER_DEFAULTS__ZERO_STAGE=3; the domain's own dataclass, validated here.
    defaults: Defaults = Field(default_factory=Defaults)
    consumer_group: str = "trainer-jobs"
    # The topics (tests and side-by-side stacks use their own).
    job_requested_topic: str = topics.TRAINING_JOB_REQUESTED
    progress_topic: str = topics.TRAINING_PROGRESS
    # Runs jobs; off: this replica only serves the API and takes requests (no worker loop).
    run_jobs: bool = True
    # Continuous training (LLMOPS_TRAINER_CONTINUOUS, JSON; off unless a tenant turns it on).
    continuous: ContinuousSettings = Field(default_factory=ContinuousSettings)

    @model_validator(mode="after")
    def _default_replica_id(self) -> Settings:
        if not self.replica_id:
            self.replica_id = f"{socket.gethostname()}:{self.grpc_port}"
        return self
