"""The one message at a pipeline's end: every stage's result, sent to the notification URL.

The URL is a secret: it reaches the driver only through its environment (TUNEFORGE_NOTIFY_URL, set from
`--notify URL` by the face that starts the driver) and is never written to the record, a log or an answer;
`Pipeline.notify` only says one was given. A driver restarted later (after kill -9) can only notify when
TUNEFORGE_NOTIFY_URL is set where it is restarted. Sending uses `tuneforge.templates._shared.notify`
(`send(url, payload)`, retries, never raises); hook: `notify_end` sends nothing when that module is missing.
A stage's own job sends nothing: the driver keeps the URL out of the environment its jobs inherit.
"""

from __future__ import annotations

from typing import Any

from ..records.pipelines import Pipeline

NOTIFY_ENV = "TUNEFORGE_NOTIFY_URL"


def payload(pipeline: Pipeline) -> dict[str, Any]:
    """What the notification carries: the pipeline's end and each stage's result (metrics, files, errors)."""
    stages = []
    for rec in pipeline.stages:
        entry: dict[str, Any] = {"stage": rec.index, "kind": rec.kind, "label": rec.label, "state": rec.state,
                                 "job_id": rec.job_id, "message": rec.message}
        if rec.output.get("metrics"):
            entry["metrics"] = rec.output["metrics"]
        report = rec.output.get("report") or {}
        if report.get("files"):
            entry["files"] = [{k: f.get(k) for k in ("quant", "path", "bytes")} | {"passed": (f.get("checks") or {}).get("passed")}
                              for f in report["files"]]
        stages.append(entry)
    done = sum(r.state == "COMPLETED" for r in pipeline.stages)
    text = (f"tuneforge pipeline {pipeline.name or pipeline.pipeline_id} {pipeline.state}: {done}/{len(pipeline.stages)} "
            f"stages completed. " + "; ".join(f"{s['label']} {s['state']}" for s in stages))
    return {"event": "pipeline_finished", "pipeline_id": pipeline.pipeline_id, "name": pipeline.name,
            "state": pipeline.state, "message": pipeline.message, "stages": stages, "text": text}


def notify_end(pipeline: Pipeline, url: str | None) -> bool:
    """Send the end payload to `url` (the driver's, from its environment); True when it was handed to the sender."""
    if not url or pipeline.notified:
        return False
    try:
        from ..templates._shared import (
            notify,  # engineer "notify"'s module: send(url, payload), never raising
        )
    except ImportError:  # not there yet: nothing to send with (the hook stays)
        return False
    notify.send(url, payload(pipeline))
    from ..records.pipelines import PipelineStore

    PipelineStore().update(pipeline.pipeline_id, notified=True)
    return True


__all__ = ["NOTIFY_ENV", "notify_end", "payload"]
