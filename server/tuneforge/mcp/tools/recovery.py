"""resume_job and retry_job: a stopped training job continued from its checkpoint, or run again with the fix
(actions/recovery.py). A paid (backend hf) one only with the user's go-ahead, as submit_training."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...reports.recovery import RecoveryResult
from ..arguments import JobId
from ..errors import tool_errors

CONFIRMED = Annotated[bool, Field(description="Set true only after the user saw the new job's plan and cost and agreed; "
                                              "required when the job ran on Hugging Face Jobs (billed).")]


def agent_next(result: RecoveryResult) -> RecoveryResult:
    return result.model_copy(update={"next": (
        f"Tell the user the new job id {result.job_id} and what changed; check it with "
        f"job_status(job_id='{result.job_id}') only when they ask.")})


def resume_job(
    job_id: JobId,
    timeout_seconds: Annotated[int | None, Field(ge=60, le=7 * 24 * 3600, description="A new time limit for the continuation (default: the job's own).")] = None,
    confirmed: CONFIRMED = False,
) -> RecoveryResult:
    """Continue a training job that stopped (ERROR, CANCELED, or timed out) from its newest complete checkpoint,
    as a new job on the same backend with the same config: global step, optimizer, scheduler and RNG state
    continue, so the loss curve goes on. Returns the new job id (it runs now) and the checkpoint's step. Refused
    (recovery.no_checkpoint) when the job saved no checkpoint: offer retry_job instead; a COMPLETED or still running
    job is refused too. Use when the user wants a failed, canceled or timed-out run to go on."""
    from ...actions.recovery import resume

    with tool_errors():
        return agent_next(resume(job_id, timeout_seconds=timeout_seconds, confirmed=confirmed))


def retry_job(
    job_id: JobId,
    apply_fix: Annotated[bool, Field(description="Apply the diagnosis's retry_with (job_status shows the diagnosis): out of memory -> smaller batch, then gradient checkpointing, then QLoRA or a bigger flavor; divergence -> learning rate x 0.1; timeout -> a longer limit, resuming from the checkpoint.")] = False,
    confirmed: CONFIRMED = False,
) -> RecoveryResult:
    """Run a stopped training job again as a new job linked to it (retry_of), from the start with the same config,
    or with apply_fix=true with its diagnosis's config change (the changes come back as old -> new per field; on
    Hugging Face Jobs the hardware is planned again). Use after telling the user the diagnosis's kind and fix and
    hearing that they want the retry."""
    from ...actions.recovery import retry

    with tool_errors():
        return agent_next(retry(job_id, apply_fix=apply_fix, confirmed=confirmed))


__all__ = ["resume_job", "retry_job"]
