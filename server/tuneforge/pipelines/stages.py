"""What each stage reads: the config a train stage runs with, the model the previous stage left, its metrics.

Merge, then a new LoRA: a LoRA train stage followed by another train (or preferences) stage saves its adapter
merged into its base (`merge: true`, the template's own merge_and_unload), and the next stage trains a fresh
LoRA on that merged model. Each stage's model is then a plain model folder, which every template, the doctor,
the planner and the GGUF export already read; nothing stacks adapters at load time (docs/pipelines.md).
"""

from __future__ import annotations

from typing import Any

from ..config import RunConfig
from ..config.overrides import merged_data
from ..errors import ConfigError
from ..records.job import Job
from ..types import BackendName
from .spec import EvalStage, PipelineSpec, PreferencesStage, TrainStage

#: the stage kinds that need a full model folder as input (a train stage before them saves its merged model)
NEEDS_MODEL = (TrainStage, PreferencesStage)


def train_config(spec: PipelineSpec, index: int, model: str, *, backend: str, dataset: str | None = None) -> RunConfig:
    """The RunConfig of train stage `index`, reading `model` (the base, or the previous stage's output)."""
    stage = spec.stages[index]
    assert isinstance(stage, TrainStage)
    layer: dict[str, Any] = {"model": model, "method": stage.method}
    if dataset or stage.dataset is not None:
        layer["dataset"] = dataset or stage.dataset
    data = merged_data(spec.config, layer, stage.overrides)
    data["model"] = model  # the chain decides the model; an override cannot point elsewhere
    later = next((s for s in spec.stages[index + 1:] if not isinstance(s, EvalStage)), None)
    peft = (data.get("peft") or {}).get("kind", "lora") if isinstance(data.get("peft"), dict) else "lora"
    if isinstance(later, NEEDS_MODEL) and peft in ("lora", "qlora", "auto"):
        data["merge"] = True  # the next stage trains a new LoRA on this one merged into its base
    if backend == BackendName.HF and not data.get("push_to_hub"):
        if not spec.push_to:
            raise ConfigError(f"Stage {index} ({stage.label}) runs on hf and pushes nowhere.",
                              "Set `push_to: owner/name` in the pipeline file (each stage pushes to "
                              "owner/name-STAGE-METHOD) or push_to_hub in the stage's overrides.",
                              code="pipeline.push_target_required", details={"stage": index})
        data["push_to_hub"] = f"{spec.push_to}-{index}-{stage.label}"
    return RunConfig.from_dict(data, source=f"pipeline stage {index} ({stage.label})")


def output_model(job: Job) -> str | None:
    """The model a finished train job leaves for the next stage: its merged model, its full model, else the
    adapter folder (the last stage before a GGUF export needs no merge: the export merges); on hf the pushed repo."""
    if job.backend == BackendName.HF:
        return job.outputs.get("hub_repo") or job.push_target
    result = job.outputs.get("result") or {}
    return result.get("merged_dir") or result.get("model_dir") or result.get("adapter_dir")


#: result.json keys shown per stage as before -> after
METRIC_KEYS = ("eval_loss", "eval_reward_accuracy", "eval_reward_margin", "reward", "eval_accuracy")


def stage_metrics(job: Job) -> dict[str, Any]:
    """A train job's metrics before and after ({"eval_loss": {"before": 2.1, "after": 0.4}, ...}), its steps,
    train loss and runtime, and its eval block's table when it had one."""
    result = job.outputs.get("result") or {}
    metrics: dict[str, Any] = {}
    for key in METRIC_KEYS:
        before, after = result.get(f"{key}_before"), result.get(f"{key}_after")
        if before is not None or after is not None:
            metrics[key] = {"before": before, "after": after}
    for key in ("steps", "train_loss", "train_runtime_seconds"):
        if result.get(key) is not None:
            metrics[key] = result[key]
    if result.get("eval"):
        metrics["eval"] = result["eval"]
    return metrics


__all__ = ["output_model", "stage_metrics", "train_config"]
