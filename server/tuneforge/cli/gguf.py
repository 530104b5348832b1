"""`tuneforge gguf`: export a model, a LoRA adapter or a finished job to verified GGUF files + Modelfile."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from ..types import BACKENDS
from . import output

if TYPE_CHECKING:
    from ..gguf.cloud import CloudExport
    from ..reports.gguf import GGUFReport


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gguf",
        help="Export to GGUF (llama.cpp / Ollama): merge, convert, quantize, verify every file.",
        description="Export a model folder, a LoRA adapter (merged into its base) or a finished training job to GGUF "
        "with llama.cpp's own converter and quantizer at one pinned version. Every file is loaded and checked "
        "with llama.cpp before it is reported; an Ollama Modelfile with the chat template and stop tokens is written next to them.",
    )
    p.add_argument("model", nargs="?", help="Model folder, LoRA adapter folder, or Hub id.")
    p.add_argument("--job", dest="job_id", help="Export the model of this finished training job instead.")
    p.add_argument("--base", help="Base model for a LoRA adapter (default: the one named in adapter_config.json).")
    p.add_argument("--quant",
                   help="Comma-separated GGUF types (default f16,q4_k_m), e.g. f16,q8_0,q5_k_m,q4_k_m.")
    p.add_argument("--out", help="Output folder (default: the job's outputs/gguf, or $TUNEFORGE_HOME/gguf/NAME).")
    p.add_argument("--backend", default="local", choices=BACKENDS, help="Where to run the export (default local).")
    p.add_argument("--push-to", help="Hub repo to upload the verified files, Modelfile and model card to.")
    p.add_argument("--private", action="store_true", default=None, help="Create the Hub repo as private.")
    p.add_argument("--system-prompt", help="System prompt for the Modelfile (default: the training job's, if any).")
    p.add_argument("--min-agreement", action="append", metavar="TYPE=SHARE",
                   help="The gate: the share of eval prompts on which a file's greedy answer must equal the model's "
                   "(default f16/bf16 0.95, q8_0 0.9, q5_k_m and q4_k_m 0.8; see templates/_shared/gguf_checks.py). "
                   "Repeatable or comma-separated, e.g. --min-agreement q4_k_m=0.7.")
    p.add_argument("--fallback", metavar="TYPES",
                   help="Types tried in order when a --quant type fails the gate, e.g. --quant q4_k_m --fallback q8_0: "
                   "q4_k_m if it passes, else q8_0 (the failed file stays in the folder, out of the Modelfile and the push). "
                   "Local exports only.")
    p.add_argument("--flavor", help="--backend hf: Hugging Face Jobs flavor (default cpu-upgrade, or one with enough RAM for the model).")
    p.add_argument("--timeout", help="--backend hf: job time limit, e.g. 90m, 2h (default 1 h + 10 min per billion parameters).")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="Let the export run the model's own code (an auto_map in its config or tokenizer config, Python "
                   "files beside the weights). Without it such a model is refused. Read that code first.")
    p.add_argument("--install-toolchain", action="store_true",
                   help="Only build the pinned llama.cpp toolchain into the cache (instant when already built).")
    output.add_json_flag(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.install_toolchain:
        return install_toolchain(args)
    if args.backend == "hf":
        return run_cloud(args)
    from ..actions.export import export_gguf

    kwargs: dict[str, Any] = dict(quants=args.quant, out=args.out, base=args.base, job_id=args.job_id,
                                  push_to=args.push_to, system_prompt=args.system_prompt, private=args.private,
                                  trust_remote_code=args.trust_remote_code, min_agreement=args.min_agreement,
                                  fallback=args.fallback)
    if args.json:
        report = export_gguf(args.model, **kwargs)
    else:
        report = export_with_bar(args, kwargs)
    output.emit(args, report, render)
    return 0 if report.passed else 1


def export_with_bar(args: argparse.Namespace, kwargs: dict[str, Any]) -> GGUFReport:
    """The export with a progress bar; a file that fails the gate: its table first, then the error."""
    from ..actions.export import export_gguf
    from ..gguf.export import VerifyFailed

    try:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=output.stderr, transient=True) as bar:
            task = bar.add_task("Starting", total=None)

            def progress(step: int, total: int, message: str) -> None:
                bar.update(task, completed=step - 1, total=total, description=message)

            return export_gguf(args.model, progress=progress, **kwargs)
    except VerifyFailed as exc:
        render(exc.report)
        raise


def render(r: GGUFReport) -> None:
    out = output.stdout
    table = Table("type", "file", "size", "time", "checks", "ok")
    for f in r.files:
        c = f.checks
        bits = []
        if c.get("max_abs_logit_diff") is not None:
            bits.append(f"max|Δlogit| {c['max_abs_logit_diff']:.3f}")
        if c.get("top1_agreement") is not None:
            bits.append(f"top-1 {c['top1_agreement']:.0%}")
        if c.get("greedy_match_f16") is not None:
            bits.append(f"same answer as f16 {c['greedy_match_f16']:.0%}")
        if c.get("agreement") is not None:
            bits.append(f"agrees with {c['agreement_with']} on {c['agreeing_prompts']}/{c['prompts']} prompts "
                        f"({c['agreement']:.0%}, needs {c['min_agreement']:.0%})")
        ok = "[green]yes[/green]" if c.get("passed") else f"[red]no[/red] {escape(c.get('failed_because', ''))}"
        table.add_row(f.quant, escape(Path(f.path).name), f"{f.bytes / 2**20:.1f} MiB", f"{f.seconds:.1f} s", ", ".join(bits), ok)
    out.print(table)
    for f in r.rejected:
        c = f.checks
        out.print(f"[yellow]Rejected:[/yellow] {f.quant} ({escape(Path(f.path).name)}): {escape(c.get('failed_because', ''))}; "
                  "a fallback type stands in")
    out.print(f"Folder: {escape(r.out_dir)}")
    if r.modelfile:
        name = r.source.get("ollama_name") or Path(r.out_dir).name.lower()
        out.print(f"Modelfile: {escape(r.modelfile)}  (ollama create {escape(name)} -f {escape(r.modelfile)})")
    if r.files:
        out.print(f"Run it: llama-cli -m {escape(r.files[-1].path)} -cnv")
    if r.url:
        out.print(f"Pushed: {escape(r.url)}")
    for note in r.notes:
        out.print(f"[yellow]Note:[/yellow] {escape(note)}")
    tc = r.toolchain
    out.print(f"llama.cpp {tc.get('llama_cpp_commit', '')[:7]} (llama-cpp-python {tc.get('llama_cpp_python')}); "
              f"total {r.seconds:.1f} s" + ("" if r.passed else "  [bold red]Some files failed verification.[/bold red]"))


def install_toolchain(args: argparse.Namespace) -> int:
    from ..gguf import toolchain

    started = time.time()
    was = toolchain.installed() is not None

    def say(message: str) -> None:
        if not args.json:
            output.stderr.print(message)

    tc = toolchain.ensure(progress=say)
    data = tc.model_dump() | {"already_installed": was, "seconds": round(time.time() - started, 2)}

    def render_tc(d: dict[str, Any]) -> None:
        state = "already built" if d["already_installed"] else f"built in {d['seconds']:.0f} s"
        output.stdout.print(f"llama.cpp toolchain {state}: llama-cpp-python {d['version']}, llama.cpp {d['commit'][:7]}, in {escape(d['root'])}")

    output.emit(args, data, render_tc)
    return 0


def run_cloud(args: argparse.Namespace) -> int:
    """--backend hf: submit the export as a Hugging Face job and answer at once, like `train`."""
    from ..actions.export import submit_export
    from ..config import parse_duration
    from ..errors import ConfigError

    if args.fallback:
        raise ConfigError("--fallback works for local exports only for now.",
                          "Drop --fallback, or export locally (--backend local) from the pushed model.",
                          code="gguf.fallback_local_only", details={"field": "fallback"})
    result = submit_export(args.model, job_id=args.job_id, base=args.base, quants=args.quant, push_to=args.push_to,
                           flavor=args.flavor, timeout_seconds=parse_duration(args.timeout) if args.timeout else None,
                           system_prompt=args.system_prompt, private=args.private, trust_remote_code=args.trust_remote_code,
                           min_agreement=args.min_agreement)
    output.emit(args, result, render_cloud)
    return 0


def render_cloud(r: CloudExport) -> None:
    out = output.stdout
    out.print(f"Submitted GGUF export [bold]{escape(r.job_id)}[/bold] of {escape(r.model)} to Hugging Face Jobs: {escape(r.url or '')}")
    out.print(f"Flavor: {escape(r.flavor or '')}. {escape(r.flavor_reason)}")
    out.print(f"Will push {', '.join(escape(f) for f in r.files)} to {escape(r.push_to)}")
    for w in r.warnings:
        out.print(f"[yellow]Note:[/yellow] {escape(w)}")
    out.print(f"Follow it: {escape(r.next)}")
