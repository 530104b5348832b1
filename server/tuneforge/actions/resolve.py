"""One resolution for every face: a run's inputs -> the RunConfig it runs with and the Plan it runs under.

`tuneforge plan` and `tuneforge train`, MCP plan_training and submit_training, api.plan and api.train all
come here, so there is one set of defaults (RunConfig's: the local backend, LoRA, batch 4, ...) and one
meaning of `peft auto` (the planner's choice, written into the config the job runs with). A plan is what
the same inputs would submit; a submitted job records that plan (job.plan).

Submitting also runs the checks that decide whether the run can start (checks.py) and refuses before any
job exists; planning reports the same findings as warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import RunConfig
from ..errors import ConfigError, TuneforgeError
from ..flavors import expected_launch, launch_for_flavor
from ..planner.build import build_plan
from ..planner.request import request_for_config
from ..reports.dataset import DatasetReport
from ..reports.plan import Plan
from ..types import BackendName
from .checks import budget_problem, data_problems, read_report, resolve_rewards

#: where a run goes when no backend is named: this machine (free, needs no account), for plan and train alike
DEFAULT_BACKEND = BackendName.LOCAL
#: the learning rate `peft auto` uses when it chooses a full fine-tune and none was given (2e-4 suits LoRA)
FULL_FINETUNE_LR = 2e-5


@dataclass
class Resolved:
    """The config a job runs with, the plan it runs under (None when planning was skipped), the flavor."""

    config: RunConfig
    plan: Plan | None
    flavor: str | None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    report: DatasetReport | None = None


def resolve_launch(config: RunConfig, backend: str, flavor: str | None, plan: Plan | None) -> RunConfig:
    """The config the job runs with: the plan's timeout unless one was given, the flavor's launch on hf."""
    if plan is not None and plan.timeout_seconds and "timeout_seconds" not in config.model_fields_set:
        config = config.model_copy(update={"timeout_seconds": plan.timeout_seconds})
    if backend == BackendName.RAY and plan is not None and "launch" not in config.model_fields_set:
        return config.model_copy(update={"launch": expected_launch(plan.gpus if plan.flavor and "cpu" not in plan.flavor
                                                                   else 1, plan.distributed)})
    if backend != BackendName.HF or not flavor:
        return config
    if "launch" in config.model_fields_set:
        return config  # given by the user: the job service checks it against the flavor
    distributed = plan.distributed if plan is not None else None
    return config.model_copy(update={"launch": launch_for_flavor(flavor, distributed, config.launch)})


def apply_plan(config: RunConfig, plan: Plan, notes: list[str], warnings: list[str]) -> RunConfig:
    """`peft auto` becomes the planner's choice; a full fine-tune gets its own learning rate unless one was given."""
    if config.peft.kind != "auto":
        return config
    update: dict = {"peft": config.peft.model_copy(update={"kind": plan.peft})}
    if plan.peft == "none":
        if "learning_rate" not in config.train.model_fields_set:
            update["train"] = config.train.model_copy(update={"learning_rate": FULL_FINETUNE_LR})
            notes.append(f"peft auto chose a full fine-tune: learning rate {FULL_FINETUNE_LR:g} (LoRA's 2e-4 would "
                         "overwrite what the model knows); set train.learning_rate to change it.")
        if config.merge:
            update["merge"] = False
            warnings.append("merge is dropped: peft auto chose a full fine-tune, which saves the whole model already.")
    return config.model_copy(update=update)


def model_unresolved(config: RunConfig, plan: Plan) -> ConfigError:
    return ConfigError(
        f"The model {config.model!r} cannot be found: it is not a local model directory, its config.json is not "
        "in the Hugging Face cache, and the Hub could not be asked (offline or unreachable).",
        "Pass an existing model directory, or a Hub id written owner/name (e.g. HuggingFaceTB/SmolLM2-135M) "
        "with network access.", code="config.model_not_found", details={"model": config.model})


def remember_past_runs(config: RunConfig, plan: Plan) -> None:
    """The ledger's runs of the same model on the same data, in the plan and its explanation."""
    from ..ledger.past import past_note, past_runs

    try:
        plan.past_runs = past_runs(config)
    except Exception:  # noqa: BLE001 - an unreadable ledger never stops a plan
        return
    line = past_note(plan.past_runs)
    if line:
        plan.notes.append(line)


def resolve_run(config: RunConfig, *, backend: str = DEFAULT_BACKEND, flavor: str | None = None, submit: bool = True,
                dataset_given: bool = True, rows: int | None = None, budget_usd: float | None = None,
                skip_plan: bool = False) -> Resolved:
    """The config and plan of a run. With `submit`, what would stop the run raises (ConfigError or the doctor's
    TuneforgeError) before any job exists; without it (a plan), the same findings become warnings.
    `dataset_given=False` plans a config built without data (rows come from `rows`)."""
    warnings: list[str] = []
    notes: list[str] = []
    report: DatasetReport | None = None

    def refuse(problem: TuneforgeError) -> None:
        if submit:
            raise problem
        warnings.append(f"{problem.message} Fix: {problem.fix}" if problem.fix else problem.message)

    deferred: TuneforgeError | None = None  # a model problem the doctor met: raised after the plan's own verdict
    if dataset_given and not skip_plan:
        try:
            report = read_report(config)
        except TuneforgeError as exc:
            if exc.code.startswith("dataset."):
                refuse(exc)
            else:  # the model's tokenizer could not be had: check the data alone (tokens estimated), once
                deferred = exc
                try:
                    report = read_report(config, with_model=False)
                except TuneforgeError as data_exc:
                    refuse(data_exc)
        if report is not None:
            for problem in data_problems(config, report)[:1]:
                refuse(problem)
    config, reward_notes, reward_problem = resolve_rewards(config, report)
    notes.extend(reward_notes)
    if reward_problem is not None and dataset_given and deferred is None:
        refuse(reward_problem)
    elif reward_problem is not None:
        warnings.append("GRPO rewards: none named. With the data, accuracy is chosen when it has a reference column "
                        "(answer, solution, ...); otherwise the run is refused until one is named.")
    if skip_plan:
        if config.peft.kind == "auto":
            raise ConfigError("peft auto needs a plan to choose from, and planning was skipped.",
                              "Name the PEFT kind (lora, qlora or none).", code="config.peft_auto_unplanned")
        return Resolved(config=resolve_launch(config, backend, flavor, None), plan=None, flavor=flavor,
                        warnings=warnings, notes=notes)
    if budget_usd is None:  # the plan's what-if budget, else the config's own (max_cost_usd)
        budget_usd = config.max_cost_usd
    request = request_for_config(config, backend=backend, flavor=flavor, rows=rows, budget_usd=budget_usd,
                                 dataset=config.dataset.path if dataset_given else None)
    plan = build_plan(request, report=report)
    if submit and (over := budget_problem(config, plan)) is not None:
        raise over
    if submit and plan.params_guessed and backend == BackendName.LOCAL:
        # a local run reads the model from here: unresolvable now means it fails at start. A cloud job downloads it
        # itself, so there the guess stays a warning (the Hub may only have failed to answer us).
        raise model_unresolved(config, plan)
    if deferred is not None and backend == BackendName.LOCAL:
        refuse(deferred)
    elif deferred is not None:  # the cloud job reads the model itself; we only could not look at it from here
        warnings.append(f"{deferred.message} The job will try again where it runs.")
    config = apply_plan(config, plan, notes, warnings)
    if config.method_args.reward_functions and config.method == "grpo":
        plan.reward_functions = list(config.method_args.reward_functions)
    plan.notes.extend(notes)
    remember_past_runs(config, plan)
    plan.warnings.extend(w for w in warnings if w not in plan.warnings)
    flavor = flavor or plan.flavor
    return Resolved(config=resolve_launch(config, backend, flavor, plan), plan=plan, flavor=flavor,
                    warnings=list(plan.warnings), notes=notes, report=report)


__all__ = ["resolve_run", "resolve_launch", "Resolved", "DEFAULT_BACKEND", "FULL_FINETUNE_LR"]
