"""Continuous training's panels (dashboard llmops-training, `llmops report`'s "Continuous
training" section): the steps of the trainer's loops (ContinuousTrainingStep) and how the
loops ended."""

from __future__ import annotations

from llmops_observability.panels.model import Dashboard, Panel

DASHBOARD = Dashboard("llmops-training", "LLMOps / Continuous training",
                      "The trainer's continuous-training loops: every step (trigger, job, "
                      "evaluation, gate, canary) and how the loops ended.")
STEPS = "training.loop_steps"
OUTCOMES = "training.loop_outcomes"


def panels(where: str) -> list[Panel]:
    """`where`: the definitions' range-and-tenant filter."""
    return [
        Panel(OUTCOMES, "Loops by last step", DASHBOARD.uid, "barchart", "short",
              "Continuous-training loops that started in the range, by the last step they "
              "reached (canary_promoted, gate_refused, job_failed, skipped... or one still "
              "in flight).",
              f"""SELECT last_step, count() AS loops
FROM (
    SELECT loop_id, argMax(step, sequence) AS last_step
    FROM training_steps FINAL
    {where}
    GROUP BY loop_id
)
GROUP BY last_step
ORDER BY loops DESC, last_step"""),
        Panel(STEPS, "Loop steps", DASHBOARD.uid, "table", "short",
              "Every step of the loops, latest first: what triggered the loop, the job, the "
              "candidate and production versions, and why.",
              f"""SELECT ts AS time, tenant, loop_id, trigger, step, job_id,
       concat(model_name, if(model_version = 0, '', concat('@', toString(model_version))))
           AS candidate,
       production_version, eval_dataset, reason
FROM training_steps FINAL
{where}
ORDER BY time DESC, loop_id, sequence DESC
LIMIT 200""", width=24),
    ]
