"""The planner: model sizes from configs, memory by component, hardware choice, time, cost, timeouts, errors.

Architectures are written as config.json files of real models (sizes from their published configs) and
counted both by the planner and by transformers on the meta device. The hardware table is the bundled
snapshot (tests run offline).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from tuneforge.config import RunConfig
from tuneforge.errors import TuneforgeError
from tuneforge.flavors import snapshot_table, table_from_api
from tuneforge.planner import plan, plan_for_config
from tuneforge.planner.architecture import (
    count_active_parameters,
    count_parameters,
    from_config,
    lora_parameters,
    params_from_name,
)
from tuneforge.planner.dataset_stats import estimate_local
from tuneforge.planner.memory import Workload, memory_breakdown

ARCHS: dict[str, dict] = {
    "Qwen2.5-0.5B": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
        "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "tie_word_embeddings": True, "max_position_embeddings": 32768,
    },
    "Qwen3-0.6B": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 1024, "intermediate_size": 3072,
        "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 151936, "tie_word_embeddings": True, "max_position_embeddings": 40960,
    },
    "Llama-3-8B": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
        "tie_word_embeddings": False, "max_position_embeddings": 8192,
    },
    "Mistral-7B": {
        "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
        "tie_word_embeddings": False, "max_position_embeddings": 32768,
    },
    "Llama-3-70B": {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672,
        "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
        "tie_word_embeddings": False, "max_position_embeddings": 8192,
    },
    "Qwen3-30B-A3B": {
        "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 2048,
        "intermediate_size": 6144, "moe_intermediate_size": 768, "num_hidden_layers": 48, "num_attention_heads": 32,
        "num_key_value_heads": 4, "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8,
        "decoder_sparse_step": 1, "mlp_only_layers": [], "vocab_size": 151936, "tie_word_embeddings": False,
    },
    "Mixtral-8x7B": {
        "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096, "intermediate_size": 14336,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "num_local_experts": 8,
        "num_experts_per_tok": 2, "vocab_size": 32000, "tie_word_embeddings": False,
    },
    "gemma-2-2b": {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216,
        "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "vocab_size": 256000,  # tie_word_embeddings omitted on purpose: Gemma ties by default
    },
}


def write_model(root: Path, name: str, config: dict) -> str:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return str(d)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("model-configs")
    return {name: write_model(root, name, cfg) for name, cfg in ARCHS.items()}


WORDS = ("the model learns to answer questions about cooking travel science music history and code with short "
         "clear sentences that people can read").split()


def write_chats(path: Path, rows: int, words: int = 30) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            answer = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(words + i % 7))
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"Question number {i}?"},
                                              {"role": "assistant", "content": answer}]}) + "\n")
    return path


# ---- model size -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ARCHS))
def test_parameter_count_matches_transformers_on_the_meta_device(name: str, models: dict[str, str]) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(models[name])
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    expected = sum(p.numel() for p in model.parameters())
    p = plan(models[name], rows=100)
    assert abs(p.params_b * 1e9 - expected) / expected < 0.02, (p.params_b, expected)


def test_moe_models_count_every_expert_but_only_routed_ones_per_token(models: dict[str, str]) -> None:
    arch = from_config(ARCHS["Qwen3-30B-A3B"])
    assert 30.0e9 < count_parameters(arch) < 31.0e9
    assert 3.0e9 < count_active_parameters(arch) < 3.6e9  # "A3B"
    mixtral = from_config(ARCHS["Mixtral-8x7B"])
    assert 12.5e9 < count_active_parameters(mixtral) < 13.2e9
    p = plan(models["Qwen3-30B-A3B"], rows=1000)
    assert p.active_params_b and 3.0 < p.active_params_b < 3.6


def test_a_70b_model_is_sized_from_its_config_not_from_its_name(tmp_path: Path) -> None:
    small = dict(ARCHS["Qwen2.5-0.5B"])
    model = write_model(tmp_path, "my-finetune-70B", small)
    p = plan(model, rows=100)
    assert p.params_b == pytest.approx(0.494, abs=0.01)
    assert p.architecture["source"].startswith("config.json in")


@pytest.mark.parametrize("config", [
    {"model_type": "qwen3_moe", "hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 128,
     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64, "num_experts": 8,
     "num_experts_per_tok": 2, "vocab_size": 1000},
    {"model_type": "qwen2_moe", "hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 96,
     "shared_expert_intermediate_size": 320, "num_hidden_layers": 2, "num_attention_heads": 4,
     "num_key_value_heads": 4, "num_experts": 6, "num_experts_per_tok": 2, "vocab_size": 1000},
    {"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
     "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000},
], ids=["qwen3_moe", "qwen2_moe", "qwen2"])
def test_lora_parameter_count_matches_peft_all_linear(config: dict) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config))
    peft_model = get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert lora_parameters(from_config(config), 8) == trainable


def test_a_name_is_only_a_labelled_last_resort_when_no_config_can_be_read() -> None:
    assert params_from_name("meta-llama/Llama-3.3-70B-Instruct") == 70e9
    assert params_from_name("HuggingFaceTB/SmolLM2-135M-Instruct") == 135e6
    assert params_from_name("Qwen/Qwen3-30B-A3B") == 30e9
    p = plan("nobody-here/Imaginary-7B-Chat", rows=1000)  # offline, not cached: guessed from the name
    assert 6.0 < p.params_b < 8.0
    assert any("GUESS" in w for w in p.warnings)
    assert "guessed" in p.architecture["source"]


# ---- clear errors ---------------------------------------------------------------------------------
def test_an_unknown_model_offline_is_a_clear_error() -> None:
    with pytest.raises(TuneforgeError) as exc:
        plan("nobody-here/mystery-model", rows=100)
    assert exc.value.code == "plan.model_unavailable_offline"
    assert "config.json" in exc.value.fix


def test_a_model_directory_without_config_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "weights-only").mkdir()
    with pytest.raises(TuneforgeError) as exc:
        plan(str(tmp_path / "weights-only"), rows=100)
    assert exc.value.code == "plan.model_no_config"


def test_a_dataset_with_zero_rows_is_a_clear_error(tmp_path: Path, models: dict[str, str]) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Qwen2.5-0.5B"], dataset=str(empty))
    assert exc.value.code == "dataset.empty"
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Qwen2.5-0.5B"], rows=0)
    assert exc.value.code == "plan.invalid_rows"


@pytest.mark.parametrize("epochs", [-1.0, 0.0])
def test_non_positive_epochs_are_a_clear_error(epochs: float, models: dict[str, str]) -> None:
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Qwen2.5-0.5B"], rows=100, epochs=epochs)
    assert exc.value.code == "plan.invalid_epochs"
    assert exc.value.fix


def test_unknown_flavors_options_and_cpu_flavors_are_refused(models: dict[str, str]) -> None:
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Qwen2.5-0.5B"], rows=100, flavor="a100-huge")
    assert exc.value.code == "plan.unknown_flavor"
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Qwen2.5-0.5B"], rows=100, flavor="cpu-upgrade")
    assert exc.value.code == "plan.cpu_flavor"
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Qwen2.5-0.5B"], rows=100, learning_rate_typo=1)
    assert exc.value.code == "plan.invalid_options" and "learning_rate_typo: unknown option" in exc.value.message


# ---- hardware choice ------------------------------------------------------------------------------
# (model, method, max_length) -> (flavor, peft). 5,000 rows of ~max_length/2 tokens, one epoch, batch 4.
CHOICES = [
    ("Qwen2.5-0.5B", "sft", 1024, "l4x1", "none"),       # <= 3B: full fine-tuning; T4 has no bf16 for it
    ("Qwen3-0.6B", "dpo", 2048, "l40sx1", "none"),       # DPO doubles the sequences: faster GPU is cheaper overall
    ("Llama-3-8B", "sft", 2048, "l40sx1", "lora"),       # > 3B: LoRA; 23 GiB does not fit a 24 GB card with headroom
    ("Mistral-7B", "sft", 512, "l4x1", "lora"),          # short rows fit 24 GB; a10g-small lacks the host RAM to load it
    ("Mixtral-8x7B", "sft", 2048, "h200", "lora"),       # 47B of experts in bf16 need the 141 GB card
    ("Llama-3-70B", "sft", 2048, "h200", "qlora"),       # LoRA fits no single GPU: 4-bit base weights
]


@pytest.mark.parametrize("name,method,length,flavor,peft", CHOICES)
def test_the_planner_picks_the_expected_flavor_and_peft(name: str, method: str, length: int, flavor: str, peft: str,
                                                         models: dict[str, str]) -> None:
    p = plan(models[name], method=method, max_length=length, rows=5000)
    assert (p.flavor, p.peft) == (flavor, peft), p.notes
    assert p.memory_gb.total <= p.vram_gb * 0.9
    assert p.gpus == 1 and p.distributed is None
    assert p.price_per_hour == next(f.price_per_hour for f in snapshot_table().flavors if f.name == flavor)
    assert p.cost_usd == pytest.approx(p.hours * p.price_per_hour, abs=0.01)
    assert any(flavor in n for n in p.notes)  # the reason is shown


def test_a_model_no_single_gpu_holds_gets_a_sharded_multi_gpu_plan(models: dict[str, str]) -> None:
    p = plan(models["Llama-3-70B"], max_length=2048, rows=2000, peft="lora")
    assert p.gpus > 1 and p.distributed == "fsdp"
    assert p.memory_gb.total <= p.vram_gb / p.gpus * 0.9  # fits per GPU once sharded
    assert p.vram_gb == pytest.approx(141 * p.gpus)
    full = plan(models["Llama-3-70B"], max_length=2048, rows=2000, peft="none")
    assert full.distributed == "fsdp" and full.gpus >= 4


def test_a_flavor_too_small_is_refused_with_the_fixes(models: dict[str, str]) -> None:
    with pytest.raises(TuneforgeError) as exc:
        plan(models["Llama-3-8B"], rows=1000, peft="lora", flavor="t4-small", max_length=4096)
    assert exc.value.code == "plan.does_not_fit" and "flavor t4-small" in exc.value.message
    assert "qlora" in exc.value.fix and "bigger --flavor" in exc.value.fix


def test_snapshot_holds_the_official_prices_and_memory() -> None:
    table = snapshot_table()
    official = {"t4-small": (0.40, 16), "t4-medium": (0.60, 16), "l4x1": (0.80, 24), "a10g-small": (1.00, 24),
                "a10g-large": (1.50, 24), "a10g-largex2": (3.00, 48), "a10g-largex4": (5.00, 96),
                "a100-large": (2.50, 80), "a100x4": (10.0, 320), "a100x8": (20.0, 640), "l40sx1": (1.80, 48),
                "h200": (5.00, 141), "h200x2": (10.0, 282), "h200x4": (20.0, 564), "h200x8": (40.0, 1128)}
    for name, (price, vram) in official.items():
        f = table.get(name)
        assert f is not None, name
        assert (f.price_per_hour, f.vram_gb) == (price, vram), name
    assert "snapshot" in table.source and table.as_of


HARDWARE_WIRE = [
    {"name": "cpu-basic", "prettyName": "CPU Basic", "cpu": "2 vCPU", "ram": "16 GB", "ephemeralStorage": "50 GB",
     "accelerator": None, "unitCostMicroUSD": 167, "unitCostUSD": 0.000167, "unitLabel": "minute"},
    {"name": "a100-large", "prettyName": "Nvidia A100 - large", "cpu": "12 vCPU", "ram": "142 GB",
     "ephemeralStorage": "1000 GB", "accelerator": {"type": "gpu", "model": "A100", "quantity": "1", "vram": "80 GB",
                                                     "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 41667, "unitCostUSD": 0.041667, "unitLabel": "minute"},
    {"name": "a100x4", "prettyName": "4x Nvidia A100", "cpu": "48 vCPU", "ram": "568 GB", "ephemeralStorage": "1000 GB",
     "accelerator": {"type": "gpu", "model": "A100", "quantity": "4", "vram": "320 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 166667, "unitCostUSD": 0.166667, "unitLabel": "minute"},
    {"name": "mystery-gpu", "prettyName": "2x Mystery", "cpu": "8 vCPU", "ram": "64 GB", "ephemeralStorage": "100 GB",
     "accelerator": {"type": "gpu", "model": "Z9", "quantity": "2", "vram": "96 GB", "manufacturer": "Acme"},
     "unitCostMicroUSD": 50000, "unitCostUSD": 0.05, "unitLabel": "minute"},
]


def test_the_live_hardware_table_is_read_from_the_jobs_api_wire_shape(tmp_path: Path) -> None:
    """A real HTTP server answers GET /api/jobs/hardware; the planner reads it through huggingface_hub."""
    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            calls.append(self.path)
            body = json.dumps(HARDWARE_WIRE).encode() if self.path == "/api/jobs/hardware" else b"{}"
            self.send_response(200 if self.path == "/api/jobs/hardware" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**__import__("os").environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
               "TUNEFORGE_HOME": str(tmp_path)}
        code = ("from tuneforge.planner.hardware import hardware_table; import json; t = hardware_table(); "
                "print(json.dumps({'source': t.source, 'flavors': {f.name: [f.price_per_hour, f.gpus, f.vram_gb, f.ram_gb] "
                "for f in t.flavors}}))")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        data = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.shutdown()
    assert "/api/jobs/hardware" in calls
    assert data["source"].startswith("live")
    assert data["flavors"]["a100-large"] == [pytest.approx(2.5, abs=0.01), 1, 80.0, 142.0]
    assert data["flavors"]["a100x4"][:3] == [pytest.approx(10.0, abs=0.01), 4, 320.0]
    assert data["flavors"]["mystery-gpu"][2] == 96.0  # unknown model: the API's vram is the flavor's total
    assert (tmp_path / "hardware_live.json").is_file()  # cached for a day


def test_wire_rows_without_a_price_are_skipped() -> None:
    table = table_from_api([{"name": "x", "prettyName": "x", "cpu": "1", "ram": "1 GB", "accelerator": None,
                             "unitCostMicroUSD": None, "unitCostUSD": None, "unitLabel": "minute"}] + HARDWARE_WIRE, "today")
    assert [f.name for f in table.flavors] == ["cpu-basic", "a100-large", "a100x4", "mystery-gpu"]


# ---- memory model ---------------------------------------------------------------------------------
def test_memory_components_follow_method_peft_and_lengths() -> None:
    arch = from_config(ARCHS["Llama-3-8B"])

    def mem(**kw):
        return memory_breakdown(arch, Workload(**kw))

    lora, qlora, full = mem(peft="lora"), mem(peft="qlora"), mem(peft="none")
    assert 14.5 < lora.weights < 15.5  # 8.03B x 2 bytes
    assert qlora.weights < lora.weights / 2.5  # NF4 linears, 16-bit embeddings
    assert full.gradients == pytest.approx(full.weights, abs=0.01)
    assert full.optimizer == pytest.approx(2 * full.weights, abs=0.01)
    assert lora.gradients < 0.5 and lora.lora > 0
    assert mem(method="dpo", peft="none").reference_model == pytest.approx(full.weights)
    assert mem(method="dpo", peft="lora").reference_model == 0  # the adapter is switched off instead
    assert mem(method="grpo").generation > 0 and lora.generation == 0
    assert mem(seq_len=4096).activations > 3.5 * mem(seq_len=1024).activations
    assert mem(gradient_checkpointing=False).activations > 5 * lora.activations
    big_vocab = from_config({**ARCHS["Llama-3-8B"], "vocab_size": 151936})
    assert memory_breakdown(big_vocab, Workload()).logits >= lora.logits
    assert mem(optimizer="adamw_8bit", peft="none").optimizer < full.optimizer


def test_more_rows_cost_more_and_time_follows_tokens(models: dict[str, str]) -> None:
    small = plan(models["Qwen3-0.6B"], rows=1000, flavor="l4x1", peft="lora")
    big = plan(models["Qwen3-0.6B"], rows=10000, flavor="l4x1", peft="lora")
    assert big.tokens == pytest.approx(small.tokens * 10, rel=0.02)
    assert big.train_hours == pytest.approx(small.train_hours * 10, rel=0.02)
    assert big.cost_usd > small.cost_usd
    two_epochs = plan(models["Qwen3-0.6B"], rows=1000, flavor="l4x1", peft="lora", epochs=2)
    assert two_epochs.tokens == pytest.approx(2 * small.tokens, rel=0.02)


# ---- timeouts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [1, 50, 20000, 400000])
def test_timeouts_are_never_under_15_minutes_and_read_like_1h30m(rows: int, models: dict[str, str]) -> None:
    p = plan(models["Qwen2.5-0.5B"], rows=rows, peft="lora", flavor="a10g-large")
    assert p.timeout_seconds >= 15 * 60
    assert p.timeout_seconds >= p.train_hours * 3600 * 1.3
    assert p.timeout and p.timeout != "0h" and p.timeout[-1] in "hm"
    if p.timeout_seconds >= 3600 and p.timeout_seconds % 3600:
        assert "h" in p.timeout and p.timeout.endswith("m")


# ---- budget ---------------------------------------------------------------------------------------
def test_over_budget_plans_propose_max_steps_and_a_cheaper_setup(models: dict[str, str]) -> None:
    p = plan(models["Llama-3-8B"], rows=50000, max_length=2048, budget_usd=2.0)
    assert p.within_budget is False and p.cost_usd > 2.0
    assert p.max_steps is not None and 0 < p.max_steps < p.steps
    assert any("Over budget" in n and "max_steps" in n for n in p.notes)
    ok = plan(models["Llama-3-8B"], rows=500, max_length=512, budget_usd=50.0)
    assert ok.within_budget is True and ok.max_steps is None


# ---- dataset statistics ---------------------------------------------------------------------------
def test_the_cheap_estimate_counts_rows_and_tokens_of_local_files(tmp_path: Path, smollm2_dir: Path) -> None:
    from transformers import AutoTokenizer

    path = write_chats(tmp_path / "chats.jsonl", 120, words=40)
    stats = estimate_local(str(path), "sft")
    assert stats.rows == 120 and stats.estimated
    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    lengths = [len(tok(tok.apply_chat_template(json.loads(line)["messages"], tokenize=False), add_special_tokens=False)["input_ids"])
               for line in path.open()]
    real = sum(lengths) / len(lengths)
    assert abs(stats.mean_tokens - real) / real < 0.35, (stats.mean_tokens, real)

    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("instruction,output\n" + "".join(f"q{i},answer {i}\n" for i in range(30)), encoding="utf-8")
    assert estimate_local(str(csv_path), "sft").rows == 30
    json_path = tmp_path / "rows.json"
    json_path.write_text(json.dumps([{"text": "hello world"}] * 7), encoding="utf-8")
    assert estimate_local(str(json_path), "sft").rows == 7


def test_a_local_dataset_feeds_rows_and_tokens_into_the_plan(tmp_path: Path, models: dict[str, str]) -> None:
    path = write_chats(tmp_path / "chats.jsonl", 400)
    p = plan(models["Qwen2.5-0.5B"], dataset=str(path), max_length=2048)
    assert p.rows == 400
    assert 0 < p.seq_len < 200  # the longest row, not max_length
    assert p.tokens and p.tokens < 400 * 200
    assert p.dataset_source


# ---- the train contract ---------------------------------------------------------------------------
def test_plan_for_config_carries_what_train_reads(tmp_path: Path, smollm2_dir: Path) -> None:
    data = write_chats(tmp_path / "demo.jsonl", 300)
    config = RunConfig.from_dict({"model": str(smollm2_dir), "dataset": {"path": str(data)}, "method": "sft",
                                  "peft": {"kind": "lora"}})
    local = plan_for_config(config, backend="local", flavor=None).model_dump(mode="json")
    for key in ("flavor", "gpus", "distributed", "price_per_hour", "hours", "cost_usd", "timeout_seconds", "warnings"):
        assert key in local
    assert local["flavor"] is None and local["price_per_hour"] is None and local["cost_usd"] is None
    assert local["peft"] == "lora" and local["timeout_seconds"] >= 900
    assert local["vram_gb"] > 0  # this machine's GPU memory or RAM
    hf = plan_for_config(config.model_copy(update={"push_to_hub": "me/demo"}), backend="hf", flavor="t4-small")
    assert hf.flavor == "t4-small" and hf.price_per_hour == 0.40 and hf.peft == "lora"


def test_a_hub_dataset_that_cannot_be_read_offline_still_plans_memory_but_no_timeout(smollm2_dir: Path) -> None:
    config = RunConfig.from_dict({"model": str(smollm2_dir), "dataset": {"path": "someone/not-cached-dataset"},
                                  "push_to_hub": "me/x"})
    p = plan_for_config(config, backend="hf", flavor=None)
    assert p.rows is None and p.hours is None and p.timeout_seconds is None  # train keeps the config's timeout
    assert p.flavor and p.memory_gb.total > 0
    assert any("rows is unknown" in w for w in p.warnings)


def test_train_refuses_a_config_that_cannot_fit_before_creating_a_job(tmp_path: Path, models: dict[str, str]) -> None:
    from tuneforge.actions.train import start_training
    from tuneforge.jobs.service import JobService

    data = write_chats(tmp_path / "d.jsonl", 50)
    config = RunConfig.from_dict({"model": models["Llama-3-70B"], "dataset": {"path": str(data)}, "peft": {"kind": "lora"},
                                  "push_to_hub": "me/too-big"})
    with pytest.raises(TuneforgeError) as exc:
        start_training(config, backend="hf", flavor="a10g-small")
    assert exc.value.code == "plan.does_not_fit" and "qlora" in exc.value.fix
    assert JobService().list() == []


def test_planning_imports_no_torch(models: dict[str, str]) -> None:
    """The MCP server imports the planner at start-up, and a plan from row counts stays light."""
    code = (f"import sys; from tuneforge.planner import plan; plan({models['Qwen3-0.6B']!r}, rows=100); "
            f"plan({models['Qwen3-0.6B']!r}, rows=100, backend='local', peft='lora', max_length=256); "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
