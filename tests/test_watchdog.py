"""The loss watchdog (templates/_guards.py): its rules on synthetic loss sequences, its callback on a real
TrainerControl, the config and the flag, and a real tiny run with an absurd learning rate that it stops:
a checkpoint first, then the job ends ERROR with a message starting "divergence:"."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from tuneforge import paths
from tuneforge.config import RunConfig
from tuneforge.jobs.service import JobService
from tuneforge.progress import parse_event


@pytest.fixture
def guards(monkeypatch: pytest.MonkeyPatch):
    """templates/_guards.py as a template imports it (its helpers beside it on sys.path)."""
    monkeypatch.syspath_prepend(str(paths.templates_dir()))
    import _guards

    return _guards


def feed(watch, losses, first_step: int = 1):
    """The first verdict of a watch over losses logged at steps first_step, first_step + 1, ...: (step, verdict)."""
    for step, loss in enumerate(losses, start=first_step):
        verdict = watch.observe(step, loss)
        if verdict is not None:
            return step, verdict
    return None, None


def test_a_nan_or_inf_loss_stops_at_once_and_says_where_it_started(guards):
    step, verdict = feed(guards.LossWatch(), [2.5, 2.3, 2.1, float("nan")])
    assert step == 4 and verdict["kind"] == "divergence" and verdict["loss"] == "nan"
    assert verdict["detail"] == "loss nan at step 4 (started at 2.5)"  # the first loss until 5 are in
    assert verdict["fix"].startswith("Lower the learning rate (x0.1)") and "--apply-fix" in verdict["fix"]

    step, verdict = feed(guards.LossWatch(), [float("inf")])
    assert step == 1 and verdict["detail"] == "loss inf at step 1 (no finite loss before it)"


def test_an_exploding_loss_stops_only_after_patience_logged_steps_in_a_row(guards):
    start = [2.0] * 5
    # above 4 x 2.0 twice, back down, then three times in a row: the third of those stops it
    step, verdict = feed(guards.LossWatch(factor=4, patience=3, warmup=5), start + [9, 9, 3, 9, 9, 9, 9])
    assert step == 11, verdict  # steps 9, 10, 11
    assert "above 4x its start (2)" in verdict["detail"] and "for 3 logged steps in a row" in verdict["detail"]
    assert verdict["start_loss"] == 2.0 and verdict["loss"] == 9.0
    # just under the factor: never
    assert feed(guards.LossWatch(), start + [7.9] * 50) == (None, None)
    # a blow-up within the first logged losses is measured against the first one (measured: full fine-tune, lr 0.9)
    step, verdict = feed(guards.LossWatch(), [10.9, 26.2, 227.7, 98.5, 156.2, 174.3])
    assert step == 5 and verdict["detail"] == ("loss 156.2 at step 5, above 4x its start (10.9) for 3 logged steps "
                                               "in a row")


def test_healthy_runs_never_stop(guards):
    # a falling, noisy SFT loss (small batches: spikes of 2-3x the later level, never 4x the start)
    sft = [2.4, 2.2, 2.3, 1.9, 2.0] + [max(0.05, 1.8 - 0.05 * i) * (2.5 if i % 7 == 0 else 1) for i in range(200)]
    assert feed(guards.LossWatch(), sft) == (None, None)
    # DPO/KTO/reward start at ln 2 and fall; GRPO sits around 0, negative included, and may rise far above its start
    assert feed(guards.LossWatch(), [0.693] * 5 + [0.69 - 0.003 * i for i in range(100)]) == (None, None)
    grpo = [0.0, 0.001, -0.002, 0.0, 0.003, 0.2, 0.5, 0.8, -0.4, 0.9, 1.2, 1.1, 1.3]
    assert feed(guards.LossWatch(ratio=False), grpo) == (None, None)
    assert feed(guards.LossWatch(ratio=False), grpo + [float("nan")])[0] == len(grpo) + 1  # NaN still stops GRPO
    # a start too close to 0 for a ratio to mean anything: only NaN/inf
    assert feed(guards.LossWatch(), [0.001] * 5 + [0.5] * 10) == (None, None)


class Args:
    world_size = 1


def test_the_callbacks_save_then_stop_and_follow_the_config(guards, monkeypatch: pytest.MonkeyPatch):
    from transformers import TrainerControl, TrainerState

    monkeypatch.delenv(guards.PRICE_ENV, raising=False)
    [watchdog] = guards.guard_callbacks({"method": "sft"}, t_start=0.0)  # no price: no budget guard
    state, control = TrainerState(), TrainerControl()
    for step, loss in enumerate([2.0, 1.9, float("nan")], start=1):
        state.global_step = step
        watchdog.on_log(Args(), state, control, logs={"loss": loss, "learning_rate": 0.9})
    assert control.should_save and control.should_training_stop
    assert watchdog.stopped["step"] == 3 and watchdog.stopped["detail"].startswith("loss nan at step 3")
    # an evaluation's logs and the end-of-training summary are not training losses
    other, control = guards.guard_callbacks({"method": "sft"}, t_start=0.0)[0], TrainerControl()
    other.on_log(Args(), state, control, logs={"eval_loss": float("nan")})
    other.on_log(Args(), state, control, logs={"train_loss": float("nan")})
    assert not control.should_training_stop and other.stopped is None

    assert guards.guard_callbacks({"method": "sft", "watchdog": {"enabled": False}}, t_start=0.0) == []
    import _trainer  # the Trainer logs a NaN loss as it is (its default filter would log 0.0 or the window's mean)

    cfg = {"train": RunConfig.model_fields["train"].default_factory().model_dump(), "push_to_hub": None}
    assert _trainer.trainer_args(cfg, Path("out"), "fp32", False, False, 1)["logging_nan_inf_filter"] is False
    grpo = guards.guard_callbacks({"method": "grpo", "watchdog": {"factor": 2}}, t_start=0.0)[0]
    assert grpo.watch.ratio is False and grpo.watch.factor == 2


def test_the_config_block_and_the_flag(tmp_path: Path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "hi"}\n')
    assert RunConfig(model="a/b", dataset={"path": str(data)}).watchdog.model_dump() == {
        "enabled": True, "factor": 4.0, "patience": 3, "warmup": 5}
    with pytest.raises(Exception, match="factor"):
        RunConfig(model="a/b", dataset={"path": str(data)}, watchdog={"factor": 0.5})
    from tuneforge.cli import build_parser
    from tuneforge.cli.train import config_from_args

    args = build_parser().parse_args(["train", "--model", "a/b", "--dataset", str(data), "--no-watchdog"])
    assert config_from_args(args).watchdog.enabled is False
    args = build_parser().parse_args(["train", "--model", "a/b", "--dataset", str(data)])
    assert config_from_args(args).watchdog.enabled is True


@pytest.mark.slow
def test_an_absurd_learning_rate_is_stopped_by_the_watchdog_after_a_checkpoint(tiny_llama_dir: Path, tmp_path: Path):
    rows = [{"messages": [{"role": "user", "content": f"Say the code for item {i % 4}."},
                          {"role": "assistant", "content": f"CODE-{i % 4}-XYZ"}]} for i in range(32)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = RunConfig.model_validate({
        "model": str(tiny_llama_dir), "dataset": {"path": str(train), "eval_fraction": 0.0},
        # measured: LoRA at lr 0.9 does not diverge (the loss falls from 10.9 to 9.1); a full fine-tune explodes
        # (10.9, 26, 228, 98, 156, ...: finite, far above the start) from step 2 on
        "peft": {"kind": "none"},
        "train": {"learning_rate": 0.9, "max_steps": 40, "per_device_batch_size": 4, "logging_steps": 1,
                  "warmup_ratio": 0.0, "lr_scheduler": "constant", "precision": "fp32", "save_steps": 100},
        "max_length": 64,
    })
    service = JobService()
    job = service.submit_training(config)
    done = service.wait(job.job_id, timeout=600, poll_seconds=0.5)
    log = service.logs(job.job_id, tail=None)
    assert done.stage == "ERROR", "\n".join(log[-30:])
    assert done.message.startswith("divergence: loss "), done.message
    stopped = done.outputs["result"]["stopped"]
    losses = [e["loss"] for e in map(parse_event, log) if e and e["type"] == "progress"]
    assert stopped["step"] == len(losses) < 40  # stopped where the watchdog saw it, long before the end
    assert not math.isfinite(float(stopped["loss"])) or stopped["loss"] > 4 * stopped["start_loss"]
    checkpoint = Path(stopped["checkpoint"])
    assert checkpoint.name == f"checkpoint-{stopped['step']}" and (checkpoint / "trainer_state.json").is_file()
    assert f"at step {stopped['step']}" in done.message and str(checkpoint) in done.message
    assert f"tuneforge jobs retry {job.job_id} --apply-fix" in done.message
    assert not (Path(done.outputs["output_dir"]) / "model").exists()  # nothing is saved as if it had worked
    diagnosis = service.status(job.job_id).diagnosis  # tuneforge.diagnosis reads the template's verdict
    assert diagnosis is not None and diagnosis.kind == "divergence", diagnosis
    assert diagnosis.retry_with == {"train.learning_rate": pytest.approx(0.09)}
