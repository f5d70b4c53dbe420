"""Picks the toxicity model: Detoxify when local weights are configured, else the offline one."""

from __future__ import annotations

import logging

from llmops_safety.ports import ToxicityModel
from llmops_safety.settings import DetoxifySettings

log = logging.getLogger(__name__)


def load_toxicity_model(settings: DetoxifySettings) -> ToxicityModel:
    model: ToxicityModel
    if settings.checkpoint is not None and settings.config_dir is not None:
        from llmops_safety.adapters.detoxify import DetoxifyModel

        model = DetoxifyModel.load(settings.checkpoint, settings.config_dir, settings.device,
                                   settings.batch_size)
    else:
        from llmops_safety.adapters.profanity_check import ProfanityCheckModel

        log.info("no Detoxify weights configured (LLMOPS_SAFETY_DETOXIFY__CHECKPOINT, "
                 "__CONFIG_DIR); falling back to the offline model")
        model = ProfanityCheckModel.load()
    log.info("toxicity backend: %s (%s)", model.name, model.detail,
             extra={"toxicity_backend": model.name})
    return model
