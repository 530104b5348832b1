"""The training config: one validated, serialisable model that every template reads.

User values live here and only here: templates are static scripts that read this file, so nothing a
user types is ever pasted into Python source. Every model forbids unknown keys (a config can never
smuggle in an `env:` block or a flag the schema does not know). Strings that end up on a command line
or in a path are checked: no leading '-', no control characters, no path tricks.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..errors import ConfigError
from ..paths import outside_allowed_roots
from ..templates._shared.checkpoints import check_location
from ..templates._shared.data_files import EXTENSIONS
from ..templates._shared.metrics import metric_choices, metric_name, unknown_metrics
from ..templates._shared.rewards import REWARD_NAMES, reward_choices, unknown_rewards
from ..types import Method
from .files import config_error, load_mapping
from .guards import WatchdogSpec
from .speed import SpeedSpec

# A Hub repo id: "name" or "owner/name"; letters, digits, '-', '_', '.'; no '..', no leading '-' or '.'.
_REPO_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_token(value: str, what: str) -> str:
    """Reject what could be read as an option or break a line-oriented file."""
    if not value or not value.strip():
        raise ValueError(f"{what} is empty")
    if value.startswith("-"):
        raise ValueError(f"{what} {value!r} starts with '-', which a command line would read as an option")
    if _CONTROL.search(value):
        raise ValueError(f"{what} contains a control character (newline, tab, NUL...)")
    return value


def is_repo_id(value: str) -> bool:
    return bool(_REPO_ID.match(value)) and ".." not in value and not value.endswith(".")


#: validation context of a config read back from a job record: its paths were checked at submit and may
#: be gone since (a deleted dataset must not make the job's record unreadable)
STORED = {"stored": True}


def is_stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


#: file endings that say "a local file" (data files, and model files a user may point at by mistake)
PATH_SUFFIXES = (*EXTENSIONS, ".safetensors", ".gguf", ".bin", ".yaml", ".yml", ".txt")


def looks_like_path(value: str) -> bool:
    """A value meant as a local path, never a Hub id: it starts with / ./ ../ ~ (or .\\), ends in a file
    extension, holds a backslash or more than one slash (a Hub id has at most one)."""
    return (value.startswith(("/", "./", "../", "~", ".\\")) or Path(value).suffix.lower() in PATH_SUFFIXES
            or value.count("/") > 1 or "\\" in value)


def path_exists(value: str) -> bool:
    """Whether the path VALUE names something; False, not an exception, for a path no file system can
    hold (a name too long, an unknown ~user, a NUL byte)."""
    try:
        return Path(value).expanduser().exists()
    except (OSError, RuntimeError, ValueError):
        return False


def check_model_ref(value: str, what: str = "model") -> str:
    """A model or dataset reference: an existing local path, or a Hub repo id. A value that looks like a
    path (see looks_like_path) and does not exist is an error, never a Hub lookup at run time."""
    _check_token(value, what)
    looks_local = looks_like_path(value) or path_exists(value)
    if looks_local:
        if not path_exists(value):
            raise ValueError(f"{what} path {value!r} does not exist")
        return str(Path(value).expanduser().resolve())
    if not is_repo_id(value):
        raise ValueError(
            f"{what} {value!r} is neither an existing local path nor a Hub id like 'owner/name'"
        )
    return value


def check_name(value: str, what: str) -> str:
    _check_token(value, what)
    if not _NAME.match(value):
        raise ValueError(f"{what} {value!r} may only hold letters, digits, '-', '_' and '.'")
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetSpec(Strict):
    path: str = Field(description="Local file or directory (.jsonl/.json/.csv/.parquet) or a Hub dataset id.")
    split: str = "train"
    subset: str | None = Field(default=None, description="Hub dataset config name.")
    column_map: dict[str, str] = Field(
        default_factory=dict,
        description="Target column -> source column, e.g. {'prompt': 'question'} (as `tuneforge validate` proposes).",
    )
    eval_path: str | None = Field(default=None, description="A separate eval file or Hub id.")
    eval_split: str | None = Field(default=None, description="A split of the same Hub dataset used for eval.")
    eval_fraction: float = Field(default=0.1, ge=0.0, lt=0.5, description="Held out from train when no eval set is given.")

    @field_validator("path", "eval_path")
    @classmethod
    def _ref(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or is_stored(info):
            return v
        return check_model_ref(v, f"dataset {info.field_name}")

    @field_validator("split", "subset", "eval_split")
    @classmethod
    def _split(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else check_name(v, info.field_name)

    @field_validator("column_map")
    @classmethod
    def _map(cls, v: dict[str, str]) -> dict[str, str]:
        for target, source in v.items():
            check_name(target, "column_map target")
            _check_token(source, "column_map source")
            if "=" in source:
                raise ValueError(f"column_map source {source!r} holds '=': give one entry per rename "
                                 "(target -> source), e.g. {'prompt': 'question', 'chosen': 'good_response'}")
        return v


class PeftSpec(Strict):
    kind: Literal["lora", "qlora", "none", "auto"] = Field(
        default="lora", description="lora (default), qlora, none (full fine-tune), or auto: the planner's choice "
        "(full fine-tuning up to 3B parameters on a GPU, LoRA above or on CPU, QLoRA when LoRA does not fit), "
        "written into the config the job runs with.")
    r: int = Field(default=16, ge=1, le=1024)
    alpha: int = Field(default=32, ge=1, le=4096)
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("target_modules is an empty list; use 'all-linear' or name modules")
            for name in v:
                check_name(name, "target module")
        return v


class TrainSpec(Strict):
    learning_rate: float = Field(default=2e-4, gt=0, lt=1)
    epochs: float = Field(default=1.0, gt=0, le=100)
    max_steps: int | None = Field(default=None, ge=1)
    per_device_batch_size: int = Field(default=4, ge=1, le=4096)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=4096)
    warmup_ratio: float = Field(default=0.05, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "cosine"
    weight_decay: float = Field(default=0.0, ge=0, lt=1)
    logging_steps: int = Field(default=1, ge=1)
    save_steps: int | None = Field(default=None, ge=1, description="None: every 10% of the steps (a stopped run can resume).")
    save_total_limit: int = Field(default=2, ge=1)
    eval_steps: int | None = Field(default=None, ge=1)
    gradient_checkpointing: bool | None = Field(default=None, description="None: on for GPUs, off on CPU.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    optimizer: Literal["adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = "adamw_torch"


class MethodSpec(Strict):
    """Method-specific knobs; each template reads only its own."""

    beta: float = Field(default=0.1, gt=0, description="DPO/KTO temperature.")
    num_generations: int = Field(default=4, ge=2, le=64, description="GRPO completions per prompt.")
    max_completion_length: int = Field(default=128, ge=1, le=32768)
    reward_functions: list[str] = Field(
        default_factory=list,
        description=f"GRPO's built-in reward functions ({', '.join(REWARD_NAMES)}). Empty: accuracy when the data "
        "has a reference column (answer, solution, ...), else the run is refused until one is named.",
    )

    @field_validator("reward_functions")
    @classmethod
    def _rewards(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for name in v:
            check_name(name, "reward function")
        if not is_stored(info) and (unknown := unknown_rewards(v)):
            raise ValueError(f"unknown reward function(s) {unknown}; the built-in ones are {', '.join(REWARD_NAMES)}")
        return list(dict.fromkeys(v))


class TrackioSpec(Strict):
    project: str = "tuneforge"
    run_name: str | None = None
    space_id: str | None = Field(default=None, description="A Trackio Space to log to (cloud runs).")

    @field_validator("project", "run_name")
    @classmethod
    def _names(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else check_name(v, f"trackio {info.field_name}")

    @field_validator("space_id")
    @classmethod
    def _space(cls, v: str | None) -> str | None:
        if v is not None and not is_repo_id(_check_token(v, "trackio space_id")):
            raise ValueError(f"trackio space_id {v!r} is not a Hub id like 'owner/name'")
        return v


class LaunchSpec(Strict):
    """How many processes train: set from the plan (multi-GPU flavors); the template relaunches itself
    under `accelerate launch` when gpus > 1."""

    gpus: int = Field(default=1, ge=1, le=64)
    strategy: Literal["none", "ddp", "fsdp", "deepspeed"] = "none"  # deepspeed: ZeRO-3, else fsdp


class EvalSpec(Strict):
    """The eval block: held-out prompts with references, scored before and after training (greedy)."""

    path: str | None = Field(default=None, description="A .jsonl/.json/.csv/.parquet file or a Hub dataset id; "
                             "none: the run's dataset at `split`.")
    split: str = Field(default="test", description="The split of a Hub dataset (or of the run's dataset).")
    prompt_column: str | None = Field(default=None, description="Default: prompt/question/instruction/input, or messages.")
    reference_column: str | None = Field(default=None, description="Default: reference/answer/completion/output/..., "
                                         "or the last assistant turn.")
    metrics: list[str | dict[str, Any]] = Field(
        default_factory=lambda: ["exact_match", "rouge_l"], max_length=32,
        description="exact_match, contains, regex (option pattern), json_fields (option fields), rouge_l, perplexity, "
                    "reward:<GRPO reward>; a name or {'name': ..., options}.")
    limit: int | None = Field(default=200, ge=1, le=100000, description="At most this many held-out rows.")
    max_new_tokens: int | None = Field(default=None, ge=1, le=4096)

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None or is_stored(info):
            return v
        v = check_model_ref(v, "eval path")
        return str(Path(v).expanduser().resolve()) if looks_like_path(v) and path_exists(v) else v

    @field_validator("split", "prompt_column", "reference_column")
    @classmethod
    def _names(cls, v: str | None, info: Any) -> str | None:
        return None if v is None else check_name(v, info.field_name)

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, v: list[Any]) -> list[Any]:
        if any(isinstance(m, dict) and "name" not in m for m in v):
            raise ValueError("a metric given as a mapping needs a 'name'")
        if bad := unknown_metrics(v):
            raise ValueError(f"unknown metric(s) {bad}; the metrics are: {metric_choices()}")
        if not v or len({metric_name(m) if isinstance(m, str) else m.get('label') or m['name'] for m in v}) < len(v):
            raise ValueError("name each metric once (give a 'label' to use one metric twice)")
        return v


class RunConfig(Strict):
    """Everything a training template needs. Written to the job folder as JSON; never holds secrets."""

    model: str = Field(description="Hub model id or local model directory.")
    dataset: DatasetSpec
    method: Method = Method.SFT
    peft: PeftSpec = Field(default_factory=PeftSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    method_args: MethodSpec = Field(default_factory=MethodSpec)
    max_length: int = Field(default=1024, ge=16, le=262144)
    packing: bool = False
    padding_free: bool | None = Field(default=None, description="Flatten each batch into one row with position_ids "
                                      "(no padding). None: on unless packing (see `speed`).")
    assistant_only_loss: bool = Field(default=True, description="Train only on assistant turns (SFT, conversational data).")
    system_prompt: str | None = Field(default=None, max_length=20000, description="Stored as data; never executed.")
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    output_dir: str = Field(default="outputs", description="Relative to the job folder; an absolute path must lie under "
                            "the directory the command started in, $TUNEFORGE_HOME or $TUNEFORGE_ALLOWED_ROOTS.")
    merge: bool = Field(default=False, description="Also save the LoRA adapter merged into the base model.")
    push_to_hub: str | None = Field(default=None, description="Hub repo id to push checkpoints and the final model to.")
    hub_private: bool = True
    trackio: TrackioSpec = Field(default_factory=TrackioSpec)
    launch: LaunchSpec = Field(default_factory=LaunchSpec)
    timeout_seconds: int = Field(default=6 * 3600, ge=60, le=7 * 24 * 3600)
    eval_prompts: list[str] = Field(
        default_factory=list, max_length=64,
        description="Held-out prompts answered greedily before and after training (in result.json).",
    )
    max_new_tokens: int = Field(default=96, ge=1, le=4096)
    eval: EvalSpec | None = Field(default=None, description="Held-out metrics before and after training (see EvalSpec).")
    watchdog: WatchdogSpec = Field(default_factory=WatchdogSpec, description="Stop a diverging run (see WatchdogSpec).")
    speed: SpeedSpec = Field(default_factory=SpeedSpec, description="Training-throughput knobs (see SpeedSpec); "
                             "auto by default.")
    max_cost_usd: float | None = Field(default=None, gt=0, description="Spending limit in US dollars: refused at submit "
                                       "when the plan's estimate exceeds it; a paid job stops (after a checkpoint) "
                                       "when its cost reaches it. Local runs are free: recorded, never stopped.")
    resume_from_checkpoint: str | None = Field(default=None, description="Continue from this checkpoint (set by `tuneforge "
                                               "jobs resume`): a local checkpoint-N folder, or hf://owner/repo/last-checkpoint.")
    max_restarts: int = Field(default=0, ge=0, le=10, description="After a timeout or preemption, resume from the last "
                              "checkpoint automatically, at most this many times.")

    @field_validator("model")
    @classmethod
    def _model(cls, v: str, info: ValidationInfo) -> str:
        return v if is_stored(info) else check_model_ref(v, "model")

    @field_validator("output_dir")
    @classmethod
    def _out(cls, v: str, info: ValidationInfo) -> str:
        _check_token(v, "output_dir")
        if not Path(v).is_absolute():
            if ".." in Path(v).parts:
                raise ValueError("output_dir may not climb out of the job folder with '..'")
            return v
        if not is_stored(info) and (why := outside_allowed_roots(v)):
            raise ValueError(f"output_dir {why}")
        return v

    @field_validator("push_to_hub")
    @classmethod
    def _push(cls, v: str | None) -> str | None:
        if v is None:
            return v
        _check_token(v, "push_to_hub")
        if "/" not in v or not is_repo_id(v):
            raise ValueError(f"push_to_hub {v!r} must be a Hub repo id like 'your-name/my-model'")
        return v

    @field_validator("resume_from_checkpoint")
    @classmethod
    def _resume(cls, v: str | None, info: ValidationInfo) -> str | None:
        return v if v is None or is_stored(info) else check_location(_check_token(v, "resume_from_checkpoint"))

    @model_validator(mode="after")
    def _coherent(self) -> "RunConfig":
        if self.peft.kind == "none" and self.merge:
            raise ValueError("merge=true only applies to LoRA/QLoRA runs (a full fine-tune is already merged)")
        return self

    # ---- file I/O -------------------------------------------------------------------------------
    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "RunConfig":
        return cls.from_dict(load_mapping(path), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "RunConfig":
        """A user's config, validated; a missing path and an unknown reward get their own codes."""
        precheck(data, source)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error(exc, source) from None


def precheck(data: dict[str, Any], source: str) -> None:
    """What deserves its own error code before the schema runs: a path that does not exist
    (config.path_not_found) and a reward function GRPO does not have (config.unknown_reward)."""
    if not isinstance(data, dict):
        return
    dataset = data.get("dataset")
    refs = [("model", data.get("model"))]
    if isinstance(dataset, dict):
        refs += [("dataset.path", dataset.get("path")), ("dataset.eval_path", dataset.get("eval_path"))]
    for field, value in refs:
        if isinstance(value, str) and value.strip() and looks_like_path(value) and not path_exists(value):
            what = "model" if field == "model" else "dataset file"
            raise ConfigError(
                f"The {what} {value!r} ({field}, {source}) does not exist.",
                f"Check the path (relative paths start from {Path.cwd()}); a Hub id is written owner/name.",
                code="config.path_not_found", details={"field": field, "path": value})
    margs = data.get("method_args")
    names = margs.get("reward_functions") if isinstance(margs, dict) else None
    if isinstance(names, list) and (unknown := unknown_rewards([str(n) for n in names])):
        raise ConfigError(
            f"Unknown reward function(s) {', '.join(map(repr, unknown))} ({source}).",
            f"Use the built-in ones: {reward_choices()}.",
            code="config.unknown_reward", details={"unknown": unknown, "choices": list(REWARD_NAMES)})
