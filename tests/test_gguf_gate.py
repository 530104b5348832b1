"""The GGUF gate: a file's greedy answers must agree with the model's (templates/_shared/gguf_checks.py).

Fast tests check the rule itself (the prompts, the definition of agreement, the thresholds and their
overrides from every face), the Modelfile's name and SYSTEM, the output folder's roots and the one
push-target rule. One test runs llama.cpp on a file converted from another model than the one the
export was asked for (a second tiny Llama, same tokenizer): the gate must catch it, and nothing is pushed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_main import run_main
from conftest import build_tiny_llama, test_cache_dir
from mcp_client import in_memory, text_of
from test_gguf import make_job
from tuneforge.errors import TuneforgeError
from tuneforge.gguf import export as gguf_export
from tuneforge.gguf import modelfile as mf
from tuneforge.gguf import workers
from tuneforge.gguf.quants import QUANTS, parse_min_agreement, parse_quants
from tuneforge.gguf.source import Source
from tuneforge.reports.gguf import GGUFFile, GGUFReport
from tuneforge.templates._shared import gguf_checks as gc


@pytest.fixture(autouse=True)
def shared_toolchain_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    d = test_cache_dir() / "toolchain"
    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(d))
    return d


@pytest.fixture
def no_export(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """run_export replaced by a recorder: what reaches it got past every check, with these arguments."""
    calls: list[dict] = []

    def reached(source, quant_types, out_dir, **kwargs):
        calls.append({"source": source, "out_dir": out_dir, **kwargs})
        raise TuneforgeError("reached the export", "nothing", code="test.reached_export")

    monkeypatch.setattr(gguf_export, "run_export", reached)
    return calls


def verify_output(answers: list[list[int]]) -> dict:
    """llama_worker.py's verify output with these greedy continuations (logits equal to the reference's)."""
    return {"load_seconds": 0.1, "chat_template_in_gguf": True,
            "items": [{"tokenizer_match": True, "positions": 10, "finite": True, "max_abs_logit_diff": 0.01,
                       "mean_abs_logit_diff": 0.001, "top1_agree": 10, "continuation": a, "answer": f"answer {a}",
                       "greedy_match_transformers": False} for a in answers]}


def reference_meta(answers: list[list[int]] | None, n: int) -> dict:
    return {"dtype": "float32" if answers else "none",
            "items": [{"prompt": f"prompt {i}", "answer": None if answers is None else f"answer {answers[i]}",
                       "continuation": None if answers is None else answers[i]} for i in range(n)]}


def answers(n: int, differ: int) -> tuple[list[list[int]], list[list[int]]]:
    """n reference continuations of MAX_NEW_TOKENS tokens, and a file's: the last `differ` differ in their last token."""
    ref = [[i * 100 + t for t in range(gc.MAX_NEW_TOKENS)] for i in range(n)]
    got = [list(r) for r in ref]
    for r in got[n - differ:]:
        r[-1] += 1
    return ref, got


# ---- the rule --------------------------------------------------------------------------------------
def test_the_built_in_prompts_are_enough_and_a_jobs_eval_prompts_are_used_first():
    assert len(gc.PROMPTS) >= gc.MIN_PROMPTS >= 20 and len(set(gc.PROMPTS)) == len(gc.PROMPTS)
    assert gc.eval_prompts(None) == (gc.PROMPTS, "built-in") and gc.eval_prompts([" "]) == (gc.PROMPTS, "built-in")
    own = [f"Classify ticket {i}" for i in range(25)]
    assert gc.eval_prompts(own) == (own, "job eval_prompts")
    prompts, source = gc.eval_prompts(own[:3])
    assert prompts[:3] == own[:3] and len(prompts) == gc.MIN_PROMPTS and set(prompts[3:]) <= set(gc.PROMPTS)
    assert source == "job eval_prompts (3) + built-in (17)"


def test_the_thresholds_cover_every_type_with_the_issues_figures():
    assert set(gc.MIN_AGREEMENT) == set(QUANTS)
    assert {q: gc.MIN_AGREEMENT[q] for q in ("f16", "bf16", "q8_0", "q5_k_m", "q4_k_m")} == {
        "f16": 0.95, "bf16": 0.95, "q8_0": 0.90, "q5_k_m": 0.80, "q4_k_m": 0.80}
    assert all(0 < v <= 1 for v in gc.MIN_AGREEMENT.values())


def test_answers_agree_only_when_the_whole_greedy_continuation_is_the_same():
    a = list(range(gc.MAX_NEW_TOKENS))
    assert gc.answers_agree(a, list(a))
    assert not gc.answers_agree(a[:-1] + [999], a)  # one token off at the very end
    assert not gc.answers_agree(a[:5], a)  # stopped early: the end-of-turn token came sooner
    assert gc.answers_agree(a[:5], a[:5])  # both stopped at the same place


def test_a_file_under_its_threshold_fails_with_the_figure_and_the_threshold():
    ref, got = answers(20, 1)  # 19/20 = 95%
    checks = gc.summarise(verify_output(got), reference_meta(ref, 20), quant="f16", converted=True, seconds=1.0)
    assert checks["passed"] and checks["agreement"] == 0.95 and checks["min_agreement"] == 0.95
    assert checks["agreeing_prompts"] == 19 and checks["agreement_with"] == "transformers" and checks["top1_agreement"] == 1.0
    assert checks["disagreements"] == [{"prompt": "prompt 19", "answer": f"answer {got[19]}", "transformers_answer": f"answer {ref[19]}"}]

    ref, got = answers(20, 3)  # 17/20 = 85%
    checks = gc.summarise(verify_output(got), reference_meta(ref, 20), quant="q8_0", converted=False, seconds=1.0)
    assert not checks["passed"] and checks["agreement"] == 0.85 and checks["min_agreement"] == 0.9
    assert "17/20 prompts (85.0%), under the 90% required for q8_0" in checks["failed_because"]
    assert len(checks["disagreements"]) == 3

    lowered = gc.summarise(verify_output(got), reference_meta(ref, 20), quant="q8_0", converted=False, seconds=1.0,
                           min_agreement={"q8_0": 0.85, "q4_k_m": 0.1})
    assert lowered["passed"] and lowered["min_agreement"] == 0.85


def test_without_transformers_answers_quantized_files_are_compared_with_the_f16_file():
    ref, got = answers(20, 10)
    data = verify_output(got)
    for item, f16 in zip(data["items"], ref):
        item.update(f16_continuation=f16, f16_answer="f16 says")
    checks = gc.summarise(data, reference_meta(None, 20), quant="q4_k_m", converted=False, seconds=1.0)
    assert checks["agreement_with"] == "f16" and checks["agreement"] == 0.5 and not checks["passed"]
    assert checks["disagreements"][0]["f16_answer"] == "f16 says"
    # no reference at all (f16 itself, too large for transformers): loaded and generated, nothing to agree with
    f16_checks = gc.summarise(verify_output(got), reference_meta(None, 20), quant="f16", converted=True, seconds=1.0)
    assert "agreement" not in f16_checks and f16_checks["passed"]


def test_thresholds_are_parsed_from_flags_or_a_mapping_and_bad_ones_refused():
    assert parse_min_agreement(None) == {} and parse_min_agreement([]) == {}
    assert parse_min_agreement(["q4_k_m=0.7", "Q8_0=0.85,f16=1"]) == {"q4_k_m": 0.7, "q8_0": 0.85, "f16": 1.0}
    assert parse_min_agreement({"q5_k_m": 0.6}) == {"q5_k_m": 0.6}
    for bad, words in (("q4_k_xl=0.5", "unknown"), ("q4_k_m=70", "between 0 and 1"), ("q4_k_m", "names no share"),
                       ("q4_k_m=lots", "between 0 and 1")):
        with pytest.raises(TuneforgeError) as info:
            parse_min_agreement([bad])
        assert info.value.code == "gguf.bad_min_agreement" and words in info.value.message and info.value.fix


# ---- from every face --------------------------------------------------------------------------------
def test_the_cli_api_and_mcp_pass_the_thresholds_on(tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    no_export: list[dict]):
    from tuneforge import api

    proc = run_main(capsys, "gguf", str(tiny_llama_dir), "--quant", "q4_k_m", "--out", str(tmp_path / "o"),
                    "--min-agreement", "q4_k_m=0.7", "--min-agreement", "f16=0.9", "--json")
    assert json.loads(proc.stdout)["code"] == "test.reached_export", proc.stdout + proc.stderr
    assert no_export[-1]["min_agreement"] == {"q4_k_m": 0.7, "f16": 0.9}

    proc = run_main(capsys, "gguf", str(tiny_llama_dir), "--min-agreement", "q4_k_m=7", "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["code"] == "gguf.bad_min_agreement"

    with pytest.raises(TuneforgeError):
        api.export_gguf(str(tiny_llama_dir), quants=["q8_0"], out=str(tmp_path / "o"), min_agreement={"q8_0": 0.5})
    assert no_export[-1]["min_agreement"] == {"q8_0": 0.5}

    async def body(client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        called = await client.call_tool("export_gguf", {"model": str(tiny_llama_dir), "quants": ["q4_k_m"], "out": str(tmp_path / "o"),
                                                        "min_agreement": {"q4_k_m": 0.6}})
        return tools["export_gguf"], called

    tool, called = in_memory(body)
    assert "min_agreement" in tool.input_schema["properties"] and "min_agreement" not in tool.input_schema.get("required", [])
    assert "[test.reached_export]" in text_of(called) and no_export[-1]["min_agreement"] == {"q4_k_m": 0.6}


def test_a_jobs_eval_prompts_reach_the_export(tiny_llama_dir: Path, tmp_path: Path, no_export: list[dict]):
    from tuneforge.actions.export import export_gguf
    from tuneforge.records import JobStore

    job_id = make_job(tmp_path, stage="COMPLETED", model_dir=tiny_llama_dir, kind="full", base=str(tiny_llama_dir), system_prompt=None)
    store = JobStore()
    job = store.get(job_id)
    store.update(job_id, config=job.config.model_copy(update={"eval_prompts": ["Classify: my card was charged twice"]}))
    with pytest.raises(TuneforgeError):
        export_gguf(None, job_id=job_id, quants=["q8_0"])
    assert no_export[0]["source"].eval_prompts == ["Classify: my card was charged twice"]


def test_an_output_folder_outside_the_allowed_roots_is_refused(tiny_llama_dir: Path, tmp_path: Path, no_export: list[dict],
                                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    from tuneforge.actions.export import export_gguf

    monkeypatch.delenv("TUNEFORGE_ALLOWED_ROOTS")
    monkeypatch.chdir(tmp_path / "..")
    outside = tmp_path.parent.parent / "elsewhere" / "gguf"
    with pytest.raises(TuneforgeError) as info:
        export_gguf(str(tiny_llama_dir), quants=["f16"], out=str(outside))
    assert info.value.code == "config.output_outside_roots" and "TUNEFORGE_ALLOWED_ROOTS" in info.value.fix
    assert str(outside) in info.value.message and not no_export and not outside.exists()
    proc = run_main(capsys, "gguf", str(tiny_llama_dir), "--out", str(outside), "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["code"] == "config.output_outside_roots"

    monkeypatch.setenv("TUNEFORGE_ALLOWED_ROOTS", str(outside.parent))
    with pytest.raises(TuneforgeError) as info:
        export_gguf(str(tiny_llama_dir), quants=["f16"], out=str(outside))
    assert info.value.code == "test.reached_export" and no_export[0]["out_dir"] == outside.resolve()


def test_a_cloud_export_and_a_cloud_training_run_share_the_push_target_rule(tiny_llama_dir: Path):
    from tuneforge.actions import export, targets, train
    from tuneforge.actions.export import submit_export

    assert train.require_push_target is targets.require_push_target is export.require_push_target
    with pytest.raises(TuneforgeError) as info:
        submit_export("someone/model", quants=["q8_0"])
    assert info.value.code == "config.push_target_required" and "--push-to your-name/model-name-GGUF" in info.value.fix
    targets.require_push_target(None, "local")  # local runs keep their files


def test_the_export_flavors_come_from_the_hardware_table():
    from tuneforge.flavors import host_ram_gb, price_for
    from tuneforge.gguf import cloud

    assert not hasattr(cloud, "EXPORT_FLAVORS")
    assert cloud.export_flavors() == [(n, int(host_ram_gb(n)), price_for(n)) for n in cloud.EXPORT_FLAVOR_NAMES]


# ---- the Modelfile: its name and its SYSTEM ----------------------------------------------------------
def source(tiny_llama_dir: Path, *, job_id: str | None, system_prompt: str | None, name: str = "SmolLM2-135M-Instruct-ab12") -> Source:
    return Source(kind="full", path=str(tiny_llama_dir), name=name, job_id=job_id, system_prompt=system_prompt)


def test_the_modelfile_says_the_system_prompt_the_job_trained_with_and_none_when_it_had_none(tiny_llama_dir: Path, tmp_path: Path):
    fmt = mf.chat_format(tiny_llama_dir)
    assert fmt.default_system  # SmolLM2's chat template has one
    files = [GGUFFile(quant="q4_k_m", path=str(tmp_path / "m-Q4_K_M.gguf"), bytes=1, seconds=1.0)]
    for src_, want in ((source(tiny_llama_dir, job_id="tf-1", system_prompt=None), None),
                       (source(tiny_llama_dir, job_id="tf-1", system_prompt="You answer like a pirate."), "You answer like a pirate."),
                       (source(tiny_llama_dir, job_id=None, system_prompt=None), fmt.default_system)):
        text = gguf_export.write_modelfile(tmp_path, files, fmt, src_).read_text()
        systems = [line for line in text.splitlines() if line.startswith("SYSTEM")]
        assert systems == ([f'SYSTEM """{want}"""'] if want else []), text


def test_the_printed_ollama_create_names_the_model_the_modelfile_names(tiny_llama_dir: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]):
    from tuneforge.cli.gguf import render

    out = tmp_path / "job-out" / "gguf"
    out.mkdir(parents=True)
    src_ = source(tiny_llama_dir, job_id="tf-1", system_prompt=None)
    files = [GGUFFile(quant="q4_k_m", path=str(out / "SmolLM2-135M-Instruct-ab12-Q4_K_M.gguf"), bytes=1, seconds=1.0,
                      checks={"passed": True})]
    modelfile = gguf_export.write_modelfile(out, files, mf.chat_format(tiny_llama_dir), src_)
    (named,) = [line for line in modelfile.read_text().splitlines() if line.startswith("# Run it: ollama create ")]
    name = named.split("ollama create ", 1)[1].split()[0]
    assert name == "smollm2-135m-instruct-ab12" == mf.ollama_name(src_.name)
    report = GGUFReport(files=files, modelfile=str(modelfile), seconds=1.0, passed=True, out_dir=str(out),
                        source={"name": src_.name, "ollama_name": mf.ollama_name(src_.name)})
    capsys.readouterr()
    render(report)
    printed = capsys.readouterr().out.replace("\n", "")
    assert f"ollama create {name} -f {modelfile}" in printed and "ollama create gguf " not in printed


def test_the_cloud_export_config_uses_the_jobs_prompts_name_and_system_and_the_thresholds_travel(tiny_llama_dir: Path, tmp_path: Path):
    from tuneforge.gguf import cloud

    model = cloud.HubModel(repo="someone/SmolLM2-tuned", adapter=False, tokenizer_dir=str(tiny_llama_dir), n_params=135_000_000)
    choice = cloud.FlavorChoice(flavor="cpu-upgrade", reason="small")
    config = cloud.export_config(model, parse_quants("q4_k_m"), push_to="someone/SmolLM2-tuned-GGUF", private=None,
                                 system_prompt=None, timeout=3600, source_job="tf-1", choice=choice,
                                 eval_prompts=["Classify: my card was charged twice"])
    assert config.verify.prompts[0] == "Classify: my card was charged twice" and len(config.verify.prompts) == gc.MIN_PROMPTS
    assert "ollama create smollm2-tuned -f Modelfile" in config.modelfile and "\nSYSTEM" not in config.modelfile
    plain = cloud.export_config(model, parse_quants("q4_k_m"), push_to="someone/x-GGUF", private=None, system_prompt=None,
                                timeout=3600, source_job=None, choice=choice)
    assert plain.verify.prompts == gc.PROMPTS and '\nSYSTEM """You are a helpful AI assistant named SmolLM' in plain.modelfile
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    spec = cloud.stage_export(config, job_dir, "tf-2", "cpu-upgrade", min_agreement={"q4_k_m": 0.7})
    assert spec.args[-2:] == ["--min-agreement", "q4_k_m=0.7"]


# ---- a file that does not match its model ------------------------------------------------------------
@pytest.mark.timeout(1800)
def test_a_file_converted_from_another_model_is_caught_by_the_gate_and_not_pushed(tiny_llama_dir: Path, smollm2_dir: Path,
                                                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tuneforge.actions.export import export_gguf
    from tuneforge.gguf import hub

    other = build_tiny_llama(test_cache_dir() / "tiny-llama-h256-seed1", smollm2_dir, seed=1)  # same tokenizer, other weights
    real_convert = workers.convert
    monkeypatch.setattr(workers, "convert", lambda tc, model_dir, out, outtype, log, **kw: real_convert(tc, other, out, outtype, log, **kw))
    pushed: list[str] = []
    monkeypatch.setattr(hub, "check_can_push", lambda repo: None)
    monkeypatch.setattr(hub, "push", lambda folder, repo, files, **kw: pushed.append(repo) or "url")

    out = tmp_path / "o"
    with pytest.raises(gguf_export.VerifyFailed) as info:
        export_gguf(str(tiny_llama_dir), quants=["f16", "q8_0"], out=str(out), push_to="me/tiny-GGUF")
    err = info.value
    assert err.code == "gguf.verify_failed" and err.exit_code != 0 and not pushed
    assert "nothing was pushed to me/tiny-GGUF" in err.message
    failed = {f["file"]: f for f in err.details["failed"]}
    assert set(failed) == {"tiny-llama-h256-F16.gguf", "tiny-llama-h256-Q8_0.gguf"}
    for name, f in failed.items():
        assert f["agreement"] < f["min_agreement"] and f["agreement_with"] == "transformers"
        assert name in err.message and f"{f['agreement']:.1%}" in err.message and f"{f['min_agreement']:.0%} required" in err.message
    report = json.loads((out / "gguf-report.json").read_text())
    assert report["passed"] is False and all(not f["checks"]["passed"] for f in report["files"])
    assert err.report.files[1].checks["top1_agreement"] < 0.5


def test_a_fallback_type_reaches_the_export_from_every_face(tiny_llama_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str], no_export: list[dict]):
    proc = run_main(capsys, "gguf", str(tiny_llama_dir), "--quant", "q4_k_m", "--fallback", "q8_0,f16", "--out",
                    str(tmp_path / "o"), "--json")
    assert json.loads(proc.stdout)["code"] == "test.reached_export", proc.stdout + proc.stderr
    assert [q.name for q in no_export[-1]["fallback"]] == ["q8_0", "f16"]
    proc = run_main(capsys, "gguf", str(tiny_llama_dir), "--backend", "hf", "--fallback", "q8_0", "--json")
    assert proc.returncode == 2 and json.loads(proc.stdout)["code"] == "gguf.fallback_local_only"

    async def body(client):
        return await client.call_tool("export_gguf", {"model": str(tiny_llama_dir), "quants": ["q4_k_m"], "out": str(tmp_path / "o"),
                                                      "fallback": ["q8_0"]})

    assert "[test.reached_export]" in text_of(in_memory(body)) and [q.name for q in no_export[-1]["fallback"]] == ["q8_0"]


def test_a_type_that_fails_the_gate_is_replaced_by_the_fallback_in_the_modelfile_and_the_push(
        tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tuneforge.actions.export import export_gguf
    from tuneforge.gguf import hub

    pushed: list[list[str]] = []
    monkeypatch.setattr(hub, "check_can_push", lambda repo: None)
    monkeypatch.setattr(hub, "push", lambda folder, repo, files, **kw: pushed.append(files) or "url")
    out = tmp_path / "o"
    # a tiny random model's logits are flat, so its q4_k_m file cannot answer every prompt as the model does
    report = export_gguf(str(tiny_llama_dir), quants=["q4_k_m"], fallback=["f16"], out=str(out), push_to="me/tiny-GGUF",
                         min_agreement={"q4_k_m": 1.0})
    assert report.passed and [f.quant for f in report.files] == ["f16"] and [f.quant for f in report.rejected] == ["q4_k_m"]
    rejected = report.rejected[0]
    assert rejected.checks["agreement"] < 1.0 and not rejected.checks["passed"] and Path(rejected.path).is_file()
    assert report.files[0].checks["passed"] and Path(report.files[0].path).is_file() and report.reference is None
    assert pushed == [["tiny-llama-h256-F16.gguf"]]
    modelfile = Path(report.modelfile).read_text()
    assert "FROM ./tiny-llama-h256-F16.gguf" in modelfile and "Q4_K_M" not in modelfile
    assert any("q4_k_m failed the agreement gate; the fallback f16 passed" in n for n in report.notes)
    saved = json.loads((out / "gguf-report.json").read_text())
    assert saved["passed"] and [f["quant"] for f in saved["rejected"]] == ["q4_k_m"]
