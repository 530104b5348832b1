"""diagnose_log: why a training run failed, from a log file alone."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ...reports.diagnosis import Diagnosis
from ..errors import tool_errors


def diagnose_log(
    path: Annotated[str, Field(description="A training log on the machine the server runs on: a tuneforge job's "
                               "job.log or the output of any TRL/transformers script (its last 4 MiB are read).")],
    config_path: Annotated[str | None, Field(description="The run's config (YAML or JSON, e.g. the job folder's "
                                             "config.json): retry_with is computed from it.")] = None,
) -> Diagnosis:
    """Classify a failed training run from its log: kind (out_of_memory, auth, gated_model, not_found,
    payment_required, disk_full, divergence, chat_template, dataset_format, unsupported_hardware,
    missing_dependency, network, rate_limited, timeout, budget or unknown), the evidence lines, the fix, and
    retry_with (the config change to retry with; empty when a retry alone cannot help). Use it for a training
    log from elsewhere (a plain TRL or transformers script's); a tuneforge job's status already carries its
    diagnosis (job_status)."""
    from ...diagnosis import diagnose_file, read_run_config

    with tool_errors():
        return diagnose_file(path, read_run_config(config_path) if config_path else None)
