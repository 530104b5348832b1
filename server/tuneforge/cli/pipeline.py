"""`tuneforge pipeline run|plan|status|list|cancel|resume`: multi-stage pipelines (train, eval, preferences, gguf)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from . import output

BACKENDS = ("local", "hf", "ray")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="Run stages in order (e.g. SFT, then DPO, then a Q4_K_M GGUF) from one file.",
                       description="A pipeline file lists stages; each stage's model is the previous stage's output. "
                       "A detached driver advances the stages; see docs/pipelines.md.")
    ps = p.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND")
    run_p = ps.add_parser("run", help="Plan every stage and start the pipeline (answers at once).")
    run_p.add_argument("file", help="The pipeline file (YAML or JSON).")
    run_p.add_argument("--backend", default="local", choices=BACKENDS, help="Where the stages run (default local).")
    run_p.add_argument("--ray-address", metavar="URL", help="The Ray cluster for --backend ray: its dashboard address, e.g. http://HEAD:8265 (default: $RAY_ADDRESS).")
    run_p.add_argument("--notify", metavar="URL", help="Webhook told when the pipeline ends, with every stage's result "
                       "(or TUNEFORGE_NOTIFY_URL; a secret: never stored).")
    run_p.add_argument("--wait", action="store_true", help="Stay and show the stages until the pipeline ends.")
    output.add_json_flag(run_p)
    run_p.set_defaults(handler=run)
    plan_p = ps.add_parser("plan", help="Hardware, time, cost and time limit per stage and in total; runs nothing.")
    plan_p.add_argument("file")
    plan_p.add_argument("--backend", default="local", choices=BACKENDS)
    plan_p.add_argument("--ray-address", metavar="URL", help="The Ray cluster for --backend ray: its dashboard address, e.g. http://HEAD:8265 (default: $RAY_ADDRESS).")
    output.add_json_flag(plan_p)
    plan_p.set_defaults(handler=plan)
    for name, helptext, handler in (("status", "A pipeline's stages (restarts a driver that died).", status),
                                    ("cancel", "Stop the running stage and the rest.", cancel),
                                    ("resume", "Carry on: completed stages are kept, a failed one runs again.", resume)):
        sp = ps.add_parser(name, help=helptext)
        sp.add_argument("pipeline_id", metavar="ID")
        if name == "resume":
            sp.add_argument("--notify", metavar="URL", help="Webhook told when it ends (never stored).")
        output.add_json_flag(sp)
        sp.set_defaults(handler=handler)
    list_p = ps.add_parser("list", help="Recent pipelines.")
    list_p.add_argument("--limit", type=int, default=20)
    output.add_json_flag(list_p)
    list_p.set_defaults(handler=list_)
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])


def money(v: float | None) -> str:
    return "-" if v is None else f"${v:.2f}"


def hours(v: float | None) -> str:
    return "-" if v is None else (f"{v * 60:.0f} min" if v < 1 else f"{v:.2f} h")


def render_plan(plan: Any) -> None:
    table = Table(title=f"Pipeline {plan.name or ''} on {plan.backend}: {len(plan.stages)} stages")
    for col in ("#", "stage", "hardware", "time", "cost", "time limit"):
        table.add_column(col)
    for s in plan.stages:
        e = s.estimate
        table.add_row(str(s.index), s.label, e.hardware or "-", hours(e.hours), money(e.cost_usd),
                      "-" if e.timeout_seconds is None else f"{e.timeout_seconds // 60} min")
    table.add_row("", "[bold]total[/bold]", "", hours(plan.total_hours), money(plan.total_cost_usd),
                  "-" if plan.total_timeout_seconds is None else f"{plan.total_timeout_seconds // 60} min")
    output.stdout.print(table)
    for s in plan.stages:
        for w in s.warnings:
            output.stdout.print(f"[yellow]stage {s.index} ({s.label}):[/yellow] {escape(w)}")


def render_status(st: Any) -> None:
    table = Table(title=f"Pipeline {st.pipeline_id} {st.name}: {st.state}")
    for col in ("#", "stage", "state", "job", "detail"):
        table.add_column(col)
    for s in st.stages:
        detail = s.message
        metrics = s.output.get("metrics") or {}
        if "eval_loss" in metrics:
            m = metrics["eval_loss"]
            detail = f"eval loss {m.get('before')} -> {m.get('after')}"
        if files := (s.output.get("report") or {}).get("files"):
            detail = ", ".join(f"{f['quant']} {f['bytes'] / 2**20:.1f} MiB" for f in files)
        if s.progress and s.state == "RUNNING" and s.progress.get("step") is not None:
            detail = f"step {s.progress.get('step')}/{s.progress.get('total_steps')}"
        table.add_row(str(s.index), s.label, s.state, s.job_id or "-", escape(str(detail))[:120])
    output.stdout.print(table)
    if st.restarted_driver:
        output.stdout.print("[yellow]The driver had stopped; it was restarted from the record.[/yellow]")
    if st.next:
        output.stdout.print(f"Next: {st.next}")


def follow(pipeline_id: str) -> Any:
    import time

    from ..actions.pipeline import pipeline_status

    last = None
    while True:
        st = pipeline_status(pipeline_id)
        line = " | ".join(f"{s.label}: {s.state}" for s in st.stages)
        if line != last:
            output.stderr.print(line)
            last = line
        if st.ended:
            return st
        time.sleep(2)


def run(args: argparse.Namespace) -> int:
    from ..actions.pipeline import run_pipeline
    from ..pipelines.spec import load_spec

    spec = load_spec(args.file)
    pipeline, plan = run_pipeline(spec, backend=args.backend, confirmed=True, notify_url=args.notify, source=args.file)
    if args.wait:
        final = follow(pipeline.pipeline_id) if not args.json else wait_quietly(pipeline.pipeline_id)
        output.emit(args, {"pipeline_id": pipeline.pipeline_id, "plan": plan, "status": final}, lambda d: render_status(d["status"]))
        return 0 if final.state == "COMPLETED" else 1

    def render(_: Any) -> None:
        render_plan(plan)
        output.stdout.print(f"[bold green]Started[/bold green] pipeline [bold]{pipeline.pipeline_id}[/bold]; "
                            f"check it: tuneforge pipeline status {pipeline.pipeline_id}")

    output.emit(args, {"pipeline_id": pipeline.pipeline_id, "state": pipeline.state, "plan": plan,
                       "next": f"tuneforge pipeline status {pipeline.pipeline_id}"}, render)
    return 0


def wait_quietly(pipeline_id: str) -> Any:
    import time

    from ..actions.pipeline import pipeline_status

    while not (st := pipeline_status(pipeline_id)).ended:
        time.sleep(2)
    return st


def plan(args: argparse.Namespace) -> int:
    from ..actions.pipeline import plan_pipeline
    from ..pipelines.spec import load_spec

    result = plan_pipeline(load_spec(args.file), backend=args.backend)
    output.emit(args, result, render_plan)
    return 0


def status(args: argparse.Namespace) -> int:
    from ..actions.pipeline import pipeline_status

    output.emit(args, pipeline_status(args.pipeline_id), render_status)
    return 0


def cancel(args: argparse.Namespace) -> int:
    from ..actions.pipeline import cancel_pipeline

    output.emit(args, cancel_pipeline(args.pipeline_id), render_status)
    return 0


def resume(args: argparse.Namespace) -> int:
    from ..actions.pipeline import resume_pipeline

    output.emit(args, resume_pipeline(args.pipeline_id, notify_url=args.notify), render_status)
    return 0


def list_(args: argparse.Namespace) -> int:
    from ..actions.pipeline import list_pipelines

    items = list_pipelines(limit=args.limit)

    def render(_: Any) -> None:
        table = Table(title="Pipelines")
        for col in ("id", "name", "backend", "state", "stages done"):
            table.add_column(col)
        for st in items:
            done = sum(s.state == "COMPLETED" for s in st.stages)
            table.add_row(st.pipeline_id, st.name, st.backend, st.state, f"{done}/{len(st.stages)}")
        output.stdout.print(table)

    output.emit(args, {"pipelines": items, "count": len(items)}, render)
    return 0


def run_short_form(args: argparse.Namespace, config: Any) -> int:
    """`tuneforge train ... --then STAGE ...`: the same pipeline a file would describe, run the same way."""
    from ..actions.pipeline import run_pipeline
    from ..pipelines.spec import short_form

    spec = short_form(config.model_dump(mode="json", exclude_unset=True), args.then, backend=args.backend)
    pipeline, plan_ = run_pipeline(spec, backend=args.backend, confirmed=True, notify_url=getattr(args, "notify", None))

    def render(_: Any) -> None:
        render_plan(plan_)
        output.stdout.print(f"[bold green]Started[/bold green] pipeline [bold]{pipeline.pipeline_id}[/bold]; "
                            f"check it: tuneforge pipeline status {pipeline.pipeline_id}")

    output.emit(args, {"pipeline_id": pipeline.pipeline_id, "state": pipeline.state, "plan": plan_,
                       "next": f"tuneforge pipeline status {pipeline.pipeline_id}"}, render)
    return 0


def run_demo(args: argparse.Namespace) -> int:
    """`tuneforge demo --pipeline`: SFT -> DPO -> GGUF q4_k_m of SmolLM2, offline, through the pipeline path."""
    from ..actions.demo import run_pipeline_demo

    err = output.stderr
    if args.json:
        result = run_pipeline_demo(steps=args.steps or 60)
        output.print_json({"pipeline_id": result.pipeline_id, "state": result.state, "message": result.message,
                           "stages": [s.model_dump(exclude={"state"}) | {"state": s.state} for s in result.stages],
                           "gguf": result.gguf, "seconds": result.seconds})
        return 0 if result.state == "COMPLETED" else 1
    err.print("[bold]tuneforge demo --pipeline[/bold]: SmolLM2-135M-Instruct, offline on this machine: SFT on the "
              "ticket-triage data, then DPO on the SFT model with the shipped preference pairs, then a Q4_K_M GGUF.")
    last: list[str] = []

    def on_update(st: Any) -> None:
        line = " | ".join(f"{s.label}: {s.state}" + (f" step {s.progress.get('step')}/{s.progress.get('total_steps')}"
                                                      if s.state == "RUNNING" and s.progress and s.progress.get("step") else "")
                          for s in st.stages)
        if line != (last[-1] if last else None):
            err.print(line)
            last.append(line)

    result = run_pipeline_demo(steps=args.steps or 60, on_started=lambda pid: err.print(f"Pipeline [bold]{pid}[/bold]"),
                               on_update=on_update)
    table = Table(title=f"Pipeline {result.pipeline_id}: {result.state}")
    for col in ("#", "stage", "job", "what changed (before -> after)"):
        table.add_column(col)
    for s in result.stages:
        parts = []
        for key in ("heldout_exact", "eval_loss", "eval_reward_accuracy"):
            if isinstance(m := s.metrics.get(key), dict):
                parts.append(f"{key} {fmt(m.get('before'))} -> {fmt(m.get('after'))}")
        for f in s.metrics.get("rejected", []):
            checks = f.get("checks") or {}
            parts.append(f"{f['quant']}: agreement {fmt(checks.get('agreement'))} < {fmt(checks.get('min_agreement'))}, "
                         "FAILED the gate (kept for inspection)")
        for f in s.metrics.get("files", []):
            checks = f.get("checks") or {}
            parts.append(f"{f['quant']}: agreement {fmt(checks.get('greedy_match_transformers', checks.get('greedy_match_f16')))}, "
                         f"{'passed' if checks.get('passed') else 'FAILED the gate'}")
        table.add_row(str(s.stage), s.kind, s.job_id or "-", escape("; ".join(parts) or s.state))
    output.stdout.print(table)
    for f in result.gguf:
        output.stdout.print(f"GGUF {f['quant']} (verified): {f['path']} ({(f.get('bytes') or 0) / 2**20:.1f} MiB)")
    if result.state != "COMPLETED":
        output.stdout.print(f"[yellow]{escape(result.message)}[/yellow]")
    output.stdout.print(f"Done in {result.seconds:.0f} s. Details: tuneforge pipeline status {result.pipeline_id}")
    return 0 if result.state == "COMPLETED" else 1


def fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, (int, float)) else "-"
