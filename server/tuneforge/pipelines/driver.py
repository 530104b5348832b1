"""The detached pipeline driver: `python -m tuneforge.pipelines.driver PIPELINE_ID`.

Started in a session of its own (like the local job supervisor), it walks the pipeline record's stages in
order: a stage already COMPLETED is skipped (its output is read back from the record), a stage whose job
is still running is waited on (a driver restarted after kill -9 adopts it), any other stage gets a new job.
Train stages are jobs of the pipeline's backend (local supervisor or Hugging Face Jobs); eval and local GGUF
stages run here, recorded as jobs whose process is this driver (so a dead driver shows as a dead job). At
the end one notification carries every stage's result. SIGTERM (cancel) stops between polls.

It is the one process that writes a running pipeline's record; the faces only start, restart or stop it.
Layer: it runs actions (train, export, evaluate), so it sits with them (tests/test_architecture.py).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from ..errors import TuneforgeError
from ..jobs.service import JobService
from ..jobs.workspace import job_folder
from ..records import Job, JobStore, new_job_id
from ..records.pipelines import Pipeline, PipelineStore, StageRecord
from ..types import TERMINAL, BackendName
from .notify import NOTIFY_ENV, notify_end
from .spec import EvalStage, GGUFStage, PipelineSpec, PreferencesStage, TrainStage
from .stages import output_model, stage_metrics, train_config

POLL_SECONDS = float(os.environ.get("TUNEFORGE_PIPELINE_POLL_SECONDS", "1.0"))


class Stopped(Exception):
    """SIGTERM arrived: the pipeline is being canceled."""


class Driver:
    def __init__(self, pipeline_id: str):
        self.pipelines = PipelineStore()
        self.service = JobService()
        self.jobs: JobStore = self.service.store
        self.pipeline = self.pipelines.get(pipeline_id)
        self.spec = PipelineSpec.model_validate(self.pipeline.spec)
        self.stop = False
        # the notification URL (a secret) is kept here, out of the environment the stage jobs inherit: the
        # pipeline sends one message at its end, its stages none of their own
        self.notify_url = os.environ.pop(NOTIFY_ENV, None)
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum: int, frame: object) -> None:
        self.stop = True

    # ---- the record --------------------------------------------------------------------------------
    def save_stage(self, index: int, **changes: Any) -> StageRecord:
        stages = list(self.pipeline.stages)
        stages[index] = stages[index].model_copy(update=changes)
        self.pipeline = self.pipelines.update(self.pipeline.pipeline_id, stages=[s.model_dump() for s in stages])
        return self.pipeline.stages[index]

    def link(self, index: int, job_id: str) -> None:
        self.jobs.update(job_id, pipeline_id=self.pipeline.pipeline_id, pipeline_stage=index)
        rec = self.pipeline.stages[index]
        if job_id not in rec.job_ids:
            self.save_stage(index, job_ids=[*rec.job_ids, job_id])

    def current_job(self, index: int) -> Job | None:
        """The stage's latest job, including one submitted just before a crash that the record missed."""
        rec = self.pipeline.stages[index]
        linked = [j for j in self.jobs.list(limit=200) if j.pipeline_id == self.pipeline.pipeline_id
                  and j.pipeline_stage == index and j.job_id not in rec.job_ids]
        for job in reversed(linked):
            self.link(index, job.job_id)
        job_id = self.pipeline.stages[index].job_id
        return self.service.refresh(job_id) if job_id else None

    # ---- running ------------------------------------------------------------------------------------
    def run(self) -> int:
        import fcntl

        import psutil

        from .. import paths

        lock_dir = paths.home() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(lock_dir / f"{self.pipeline.pipeline_id}.lock", "w")  # noqa: SIM115 (held while it runs)
        try:  # one driver per pipeline: two status calls that both found it dead start only one
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0
        self.pipeline = self.pipelines.get(self.pipeline.pipeline_id)
        if self.pipeline.ended:
            return 0
        me = psutil.Process(os.getpid())
        self.pipeline = self.pipelines.update(self.pipeline.pipeline_id, state="RUNNING", message="running",
                                              driver_pid=me.pid, driver_started=me.create_time())
        source: dict[str, Any] = {"model": self.spec.model, "job_id": None, "dataset": None}
        try:
            for index, stage in enumerate(self.spec.stages):
                rec = self.pipeline.stages[index]
                if rec.state != "COMPLETED":
                    self.save_stage(index, state="RUNNING", model=source["model"], started_at=time.time(), message="")
                    rec = self.run_stage(index, stage, source)
                if rec.state == "CANCELED":
                    return self.finish("CANCELED", "canceled by request")
                if rec.state != "COMPLETED":
                    return self.finish("ERROR", f"stage {index} ({rec.label}) {rec.state}: {rec.message}")
                source = {**source, **{k: v for k, v in rec.output.get("source", {}).items() if v is not None}}
        except Stopped:
            return self.finish("CANCELED", "canceled by request")
        return self.finish("COMPLETED", "completed")

    def run_stage(self, index: int, stage: Any, source: dict[str, Any]) -> StageRecord:
        job = self.current_job(index)
        if isinstance(stage, (TrainStage, PreferencesStage)) or (isinstance(stage, GGUFStage) and self.pipeline.backend == BackendName.HF):
            if job is None or job.stage in ("ERROR", "CANCELED"):  # a fresh attempt (resume/retry after a failure)
                try:
                    job = self.submit(index, stage, source)
                except TuneforgeError as exc:  # refused at submit (its data, its model): the stage fails, with why
                    why = f"{exc.message} Fix: {exc.fix}" if exc.fix else exc.message
                    return self.save_stage(index, state="ERROR", message=why, finished_at=time.time())
            job = self.wait(job.job_id)
        else:  # run here: a job left by a dead driver is over; this attempt starts again
            if job is None or job.stage != "COMPLETED":
                job = self.run_here(index, stage, source)
        return self.record_result(index, stage, job)

    def submit(self, index: int, stage: Any, source: dict[str, Any]) -> Job:
        backend = self.pipeline.backend
        if isinstance(stage, TrainStage):
            from ..actions.train import start_training

            config = train_config(self.spec, index, source["model"], backend=backend,
                                  dataset=source.get("dataset") if stage.dataset is None else None)
            submitted = start_training(config, backend=backend, flavor=self.spec.flavor)
            job_id = submitted.job_id
        elif isinstance(stage, PreferencesStage):
            from .preferences import submit_preferences

            job_id = submit_preferences(self.service, stage, source["model"]).job_id
        else:
            from ..actions.export import submit_export

            job_id = submit_export(job_id=source["job_id"], quants=stage.quants, push_to=stage.push_to,
                                   min_agreement=stage.min_agreement).job_id
        self.link(index, job_id)
        return self.jobs.get(job_id)

    def wait(self, job_id: str) -> Job:
        while True:
            if self.stop:
                raise Stopped()
            job = self.service.refresh(job_id)
            if job.stage in TERMINAL:
                return job
            time.sleep(POLL_SECONDS)

    def run_here(self, index: int, stage: Any, source: dict[str, Any]) -> Job:
        """An eval or local GGUF stage, in this process, recorded as a job whose process is this driver."""
        import psutil

        job_id = new_job_id()
        job_dir = job_folder(job_id)
        me = psutil.Process(os.getpid())
        self.jobs.create(Job(job_id=job_id, backend="local", kind=stage.kind, job_dir=str(job_dir),
                                   created_at=time.time(), started_at=time.time(), stage="RUNNING",
                                   message=f"{stage.label} of {source['model']}", pid=me.pid, pid_started=me.create_time(),
                                   pipeline_id=self.pipeline.pipeline_id, pipeline_stage=index))
        self.link(index, job_id)
        try:
            outputs = self.export_here(stage, source, job_dir) if isinstance(stage, GGUFStage) else \
                self.evaluate_here(stage, source)
        except TuneforgeError as exc:
            outputs = dict(getattr(exc, "details", None) or {})
            return self.jobs.update(job_id, stage="ERROR", message=exc.message, error=exc.message, outputs=outputs,
                                    finished_at=time.time()) or self.jobs.get(job_id)
        return self.jobs.update(job_id, stage="COMPLETED", message="completed", outputs=outputs,
                                finished_at=time.time()) or self.jobs.get(job_id)

    def export_here(self, stage: GGUFStage, source: dict[str, Any], job_dir: Any) -> dict[str, Any]:
        from ..actions.export import export_gguf

        kwargs = {"job_id": source["job_id"]} if source.get("job_id") else {"model": source["model"]}
        report = export_gguf(quants=stage.quants, out=str(job_dir / "gguf"), push_to=stage.push_to,
                             min_agreement=stage.min_agreement, fallback=stage.fallback or None, **kwargs)
        return {"report": report.model_dump(mode="json")}

    def evaluate_here(self, stage: EvalStage, source: dict[str, Any]) -> dict[str, Any]:
        from ..actions.evaluate import evaluate

        block = dict(stage.eval)
        model = source.get("job_id") or source["model"]
        report = evaluate([model], block.pop("path"), **block)
        return {"report": report.model_dump(mode="json")}

    def record_result(self, index: int, stage: Any, job: Job) -> StageRecord:
        if job.stage != "COMPLETED":
            why = job.message if not job.error or job.error in job.message else f"{job.message}: {job.error.splitlines()[-1]}"
            output = {"report": job.outputs.get("report")} if job.outputs.get("report") else {}
            return self.save_stage(index, state="CANCELED" if job.stage == "CANCELED" else "ERROR", message=why,
                                   output=output, finished_at=time.time())
        if isinstance(stage, TrainStage):
            output = {"source": {"model": output_model(job), "job_id": job.job_id}, "metrics": stage_metrics(job)}
        elif isinstance(stage, PreferencesStage):
            from .preferences import preference_output

            try:
                output = preference_output(job)
            except TuneforgeError as exc:
                return self.save_stage(index, state="ERROR", message=f"{exc.message} {exc.fix}", finished_at=time.time())
        else:
            output = {"report": job.outputs.get("report") or job.outputs}
        return self.save_stage(index, state="COMPLETED", message="completed", output=output, finished_at=time.time())

    def finish(self, state: str, message: str) -> int:
        if state == "CANCELED":
            for rec in self.pipeline.stages:
                if rec.state in ("PENDING", "RUNNING"):
                    self.save_stage(rec.index, state="CANCELED", message="canceled by request")
        self.pipeline = self.pipelines.update(self.pipeline.pipeline_id, state=state, message=message,
                                              finished_at=time.time())
        notify_end(self.pipeline, self.notify_url)
        return 0 if state == "COMPLETED" else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m tuneforge.pipelines.driver PIPELINE_ID", file=sys.stderr)
        return 2
    return Driver(argv[0]).run()


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Driver", "Pipeline", "main"]
