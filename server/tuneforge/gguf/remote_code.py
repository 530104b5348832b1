"""A model's own code: found before an export starts, and refused unless the user trusts it.

A model folder or Hub repo "needs remote code" when it carries an `auto_map` in config.json,
tokenizer_config.json (or another of its JSON files), or Python files beside the weights: llama.cpp's
converter (`trust_remote_code=True` for several architectures) and transformers would import that code.
The rule is `templates/_shared/model_files.py` `remote_code_findings`, which the cloud template uses too.

Without `trust_remote_code` (`--trust-remote-code`, MCP `trust_remote_code=true`, API keyword; never a
config key) such a model is refused here, before any work; and whatever detection misses, the export
itself works on a staged copy without the model's code (`model_files.stage_model_folder`) and runs
every worker and the converter under `templates/_shared/no_remote_code.py`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TuneforgeError
from ..templates._shared.model_files import remote_code_findings
from .source import Source

CODE = "gguf.remote_code"
CLI_FIX = ("Read that code first. Only if you trust it, run again with --trust-remote-code "
           "(the converter and transformers then run it on this machine).")
#: the fix an agent gets (the MCP tool swaps it in for the CLI's)
AGENT_FIX = ("Do not decide this yourself: tell the user which files and keys were found and ask whether they "
             "trust this model's code. Only if they say yes, call export_gguf again with trust_remote_code=true.")


def folders_of(source: Source) -> list[Path]:
    """The local folders an export of SOURCE reads: the model (or adapter) and, for adapters, the base."""
    return [Path(source.path)] + ([Path(source.base_path)] if source.base_path else [])


def findings_of(source: Source) -> dict[str, list[str]]:
    """folder -> what in it is the model's own code (folders without any left out)."""
    found = {}
    for folder in folders_of(source):
        items = remote_code_findings(folder) if folder.is_dir() else []
        if items:
            found[str(folder)] = items
    return found


def refusal(found: dict[str, list[str]], *, cloud: bool = False) -> TuneforgeError:
    where = "; ".join(f"{folder}: {', '.join(items)}" for folder, items in found.items())
    what = "The model ships its own code, which the export would run"
    if cloud:
        what += " in the Hugging Face job"
    return TuneforgeError(f"{what} (llama.cpp's converter and transformers import it): {where}.", CLI_FIX, code=CODE,
                          details={"found": found})


def check(source: Source, *, trust_remote_code: bool) -> None:
    """Refuse SOURCE when it needs remote code and the user has not said they trust it."""
    if trust_remote_code:
        return
    found = findings_of(source)
    if found:
        raise refusal(found)


def check_hub(found: dict[str, list[str]], *, trust_remote_code: bool) -> None:
    """The same for a cloud export, from the Hub repos' small files (repo id -> findings)."""
    found = {repo: items for repo, items in found.items() if items}
    if found and not trust_remote_code:
        raise refusal(found, cloud=True)
