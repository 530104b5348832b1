"""The pipeline file: an ordered list of stages, validated strictly, errors naming the file, line and field.

    name: triage
    model: HuggingFaceTB/SmolLM2-135M-Instruct
    config: {max_length: 192}                # RunConfig fields every train stage starts from
    stages:
      - {kind: train, method: sft, dataset: data/train.jsonl, overrides: {train: {max_steps: 60}}}
      - {kind: preferences, prompts: data/prompts.jsonl, samples: 4, reward: exact_match}
      - {kind: train, method: dpo}           # no dataset: the preferences stage's pairs
      - {kind: eval, eval: {path: data/heldout.jsonl, metrics: [exact_match]}}
      - {kind: gguf, quants: [q4_k_m]}

Each stage's model is the previous stage's output (the base `model` for the first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config.files import load_mapping
from ..errors import ConfigError
from ..templates._shared.rewards import REWARD_NAMES
from ..types import Method

#: the preferences stage's reward that is a reward model's score
REWARD_MODEL = "reward_model"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainStage(Strict):
    kind: Literal["train"] = "train"
    method: Method = Method.SFT
    dataset: str | dict[str, Any] | None = Field(default=None, description="Its data (a path, a Hub id or a dataset "
                                                 "block); omitted after a preferences stage: that stage's pairs.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields over the pipeline's config.")

    @property
    def label(self) -> str:
        return str(self.method.value if hasattr(self.method, "value") else self.method)


class EvalStage(Strict):
    kind: Literal["eval"] = "eval"
    eval: dict[str, Any] = Field(description="An eval block: path, metrics, prompt_column, reference_column, limit.")

    @property
    def label(self) -> str:
        return "eval"


class PreferencesStage(Strict):
    kind: Literal["preferences"] = "preferences"
    prompts: str = Field(description="A .jsonl/.json/.csv file of prompts (and references for exact_match).")
    prompt_column: str = "prompt"
    reference_column: str | None = Field(default=None, description="Default: reference, answer or completion.")
    samples: int = Field(default=4, ge=2, le=32, description="Answers sampled per prompt.")
    reward: str = Field(default="exact_match", description="exact_match against the reference, a GRPO reward name, or "
                        "reward_model (the score of `reward_model`).")
    reward_model: str | None = Field(default=None, description="A reward model (a `--method reward` job's output folder, "
                                     "its job id, or a Hub id) that scores each answer; sets reward: reward_model.")
    temperature: float = Field(default=1.0, gt=0, le=5)
    max_new_tokens: int = Field(default=64, ge=1, le=4096)
    min_margin: float = Field(default=0.0, ge=0, description="Drop pairs whose reward margin is not above this.")
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def known_reward(self) -> PreferencesStage:
        if self.reward_model and "reward" not in self.model_fields_set:
            self.reward = REWARD_MODEL
        if self.reward == REWARD_MODEL and not self.reward_model:
            raise ValueError("reward: reward_model needs `reward_model: FOLDER` (a reward job's output)")
        if self.reward != REWARD_MODEL and self.reward not in REWARD_NAMES:
            raise ValueError(f"unknown reward {self.reward!r}: use {', '.join(REWARD_NAMES)} or {REWARD_MODEL}")
        if self.reward_model and self.reward != REWARD_MODEL:
            raise ValueError(f"reward_model is set but reward is {self.reward!r}: drop one")
        return self

    @property
    def label(self) -> str:
        return "preferences"


class GGUFStage(Strict):
    kind: Literal["gguf"] = "gguf"
    quants: list[str] = Field(default_factory=lambda: ["q4_k_m"], min_length=1)
    push_to: str | None = Field(default=None, description="A Hub repo for the GGUF files (needed on hf).")
    min_agreement: dict[str, float] | None = Field(default=None, description="The agreement gate per quant, over the defaults.")
    fallback: list[str] = Field(default_factory=list, description="Types tried in order when one in quants fails the gate "
                                "(the first that passes stands in; local only).")

    @property
    def label(self) -> str:
        return "gguf " + ",".join(self.quants)


STAGE_KINDS = ("train", "eval", "preferences", "gguf")
Stage = Annotated[TrainStage | EvalStage | PreferencesStage | GGUFStage, Field(discriminator="kind")]


class PipelineSpec(Strict):
    name: str = ""
    model: str = Field(description="The base model: a Hub id or a local model folder.")
    config: dict[str, Any] = Field(default_factory=dict, description="RunConfig fields every train stage starts from.")
    push_to: str | None = Field(default=None, description="On hf: each train stage pushes to PUSH_TO-STAGE-METHOD "
                                "unless its overrides name push_to_hub.")
    flavor: str | None = None
    stages: list[Stage] = Field(min_length=1)


def line_of(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of a field in YAML/JSON text (the deepest part of `loc` that exists)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            found = node.value[part]
        else:
            found = None
        if found is None:
            break
        node, line = found, found.start_mark.line + 1
    return line


def spec_error(exc: ValidationError, source: str, text: str | None) -> ConfigError:
    lines = []
    for err in exc.errors():
        raw = err["loc"]  # a stage's loc carries its kind after the index: (stages, 1, gguf, quants)
        loc = tuple(p for i, p in enumerate(raw) if not (i == 2 and raw[0] == "stages" and p in STAGE_KINDS))
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        where = f"{source}:{n}: " if text and (n := line_of(text, loc)) else ""
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where}{dotted}: {msg}")
    return ConfigError("Invalid pipeline file: " + "; ".join(lines),
                       "Fix or remove the fields named; docs/pipelines.md lists the stage kinds and their fields.",
                       code="pipeline.invalid", details={"errors": lines})


def parse_spec(data: dict[str, Any], source: str = "pipeline", text: str | None = None) -> PipelineSpec:
    """A pipeline from a mapping, checked: the schema, then the order (a train stage needs data)."""
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise spec_error(exc, source, text) from None
    for i, stage in enumerate(spec.stages):
        if isinstance(stage, TrainStage) and stage.dataset is None and "dataset" not in spec.config and not (
                i > 0 and isinstance(spec.stages[i - 1], PreferencesStage)):
            n = line_of(text, ("stages", i)) if text else None
            raise ConfigError(f"{source}:{n or '?'}: stages.{i}: a train stage needs a dataset (or a preferences stage "
                              "right before it).", "Add `dataset: FILE` to the stage.",
                              code="pipeline.stage_without_data", details={"stage": i})
    return spec


def load_spec(path: str | Path) -> PipelineSpec:
    """Read a pipeline file (YAML or JSON); paths in it are relative to the file's folder."""
    data = load_mapping(path)
    text = Path(path).read_text(encoding="utf-8")
    return absolute_paths(parse_spec(data, str(path), text), Path(path).resolve().parent)


def absolute_paths(spec: PipelineSpec, folder: Path) -> PipelineSpec:
    """Local paths written relative to the pipeline file, made absolute (Hub ids are left alone)."""
    def fix(value: str) -> str:
        p = Path(value).expanduser()
        return str((folder / p).resolve()) if not p.is_absolute() and (folder / p).exists() else value

    stages = []
    for stage in spec.stages:
        if isinstance(stage, TrainStage) and isinstance(stage.dataset, str):
            stage = stage.model_copy(update={"dataset": fix(stage.dataset)})
        elif isinstance(stage, PreferencesStage):
            stage = stage.model_copy(update={"prompts": fix(stage.prompts),
                                             "reward_model": fix(stage.reward_model) if stage.reward_model else None})
        elif isinstance(stage, EvalStage) and isinstance(stage.eval.get("path"), str):
            stage = stage.model_copy(update={"eval": {**stage.eval, "path": fix(stage.eval["path"])}})
        stages.append(stage)
    return spec.model_copy(update={"model": fix(spec.model), "stages": stages})


def dump(spec: PipelineSpec) -> dict[str, Any]:
    return json.loads(spec.model_dump_json())


__all__ = ["EvalStage", "GGUFStage", "PipelineSpec", "PreferencesStage", "TrainStage", "dump", "load_spec", "parse_spec"]


def short_form(config: dict[str, Any], then: list[str], *, backend: str = "local") -> PipelineSpec:
    """`tuneforge train ... --then dpo:prefs.jsonl --then gguf:q4_k_m` as a pipeline: the train command's config
    is the first stage (and the config every train stage starts from); each --then adds a stage:
    METHOD:DATA (a train stage), preferences:PROMPTS, eval:HELDOUT, gguf:QUANT[,QUANT]."""
    from ..types import METHODS

    base = dict(config)
    model, method, dataset = base.pop("model"), base.pop("method", "sft"), base.pop("dataset")
    push = base.pop("push_to_hub", None)
    stages: list[dict[str, Any]] = [{"kind": "train", "method": method, "dataset": dataset}]
    for item in then:
        kind, _, arg = item.partition(":")
        kind, arg = kind.strip().lower(), arg.strip()
        if kind == "gguf":
            stages.append({"kind": "gguf", "quants": [q.strip() for q in arg.split(",") if q.strip()] or ["q4_k_m"],
                           **({"push_to": f"{push}-GGUF"} if push and backend != "local" else {})})
        elif kind == "eval" and arg:
            stages.append({"kind": "eval", "eval": {"path": arg}})
        elif kind == "preferences" and arg:
            stages.append({"kind": "preferences", "prompts": arg})
        elif kind in METHODS:
            stages.append({"kind": "train", "method": kind, **({"dataset": arg} if arg else {})})
        else:
            raise ConfigError(f"--then {item!r} is not a stage.",
                              "Write METHOD:DATA (e.g. dpo:prefs.jsonl), preferences:PROMPTS, eval:HELDOUT or "
                              "gguf:QUANT[,QUANT] (e.g. gguf:q4_k_m).", code="pipeline.bad_then", details={"item": item})
    data = {"model": model, "config": base, "stages": stages, **({"push_to": push} if push else {})}
    return absolute_paths(parse_spec(data, "--then"), Path.cwd())
