"""The ray backend: the planner on a cluster's nodes, the runtime env, and real jobs on a real Ray head.

The fast tests need no cluster. The slow ones start a Ray head on this machine (tests/ray_cluster.py:
`ray start --head --num-cpus 2`, CPU only) and submit through the same JobService, CLI and template as
every backend: a stand-in script for the queue and cancel (seconds), the real SFT template on the tiny
Llama for training, logs, the head stopped mid-job and the resume from the job folder's checkpoint; a
sweep (two trials at once), a pipeline (sft -> dpo -> gguf) and a run on two nodes through Ray Train.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest
from tuneforge.backends.ray import runtime
from tuneforge.backends.ray.connection import RayConnection, RayError, address
from tuneforge.backends.ray.resources import Node, TrainShape, entrypoint_resources, train_shape
from tuneforge.errors import ConfigError
from tuneforge.jobs.service import JobService
from tuneforge.jobs.workspace import job_folder
from tuneforge.records import JobSpec, new_job_id

REPO = Path(__file__).resolve().parent.parent
ray = pytest.importorskip("ray.job_submission", reason="the ray extra is not installed")

LLAMA_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
            "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
            "tie_word_embeddings": False, "max_position_embeddings": 8192}
LLAMA_70B = {**LLAMA_8B, "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64}


# ---- no cluster needed ----------------------------------------------------------------------------------
def test_every_ray_job_status_maps_to_a_tuneforge_stage():
    from ray.job_submission import JobStatus
    from tuneforge.backends.ray.backend import STAGES

    assert {s.value for s in JobStatus} == set(STAGES)
    assert STAGES == {"PENDING": "SCHEDULING", "RUNNING": "RUNNING", "SUCCEEDED": "COMPLETED", "FAILED": "ERROR",
                      "STOPPED": "CANCELED"}


def test_the_address_comes_from_the_flag_or_ray_address_and_a_missing_one_says_how(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RayError) as exc:
        address()
    assert exc.value.code == "ray.address_missing" and "--ray-address" in exc.value.fix
    monkeypatch.setenv("RAY_ADDRESS", "head.example:8265")
    assert address() == "http://head.example:8265"
    assert address("https://ray.team.example/") == "https://ray.team.example"
    with pytest.raises(RayError) as exc:
        address("ray://head:10001")
    assert exc.value.code == "ray.client_address"


def test_the_packages_come_from_the_templates_pep723_header_or_the_clusters_own_env(tmp_path, monkeypatch):
    script = REPO / "templates" / "sft.py"
    header = runtime.script_dependencies(script)
    assert any(d.startswith("trl") for d in header) and any(d.startswith("torch") for d in header)
    monkeypatch.delenv(runtime.PACKAGES_ENV, raising=False)
    env = runtime.runtime_env(tmp_path, script, ["extra-pkg==1"], {"A": "1"})
    assert env["working_dir"] == str(tmp_path) and env["pip"] == [*header, "extra-pkg==1"] and env["env_vars"] == {"A": "1"}
    monkeypatch.setenv(runtime.PACKAGES_ENV, "uv")
    assert runtime.runtime_env(tmp_path, script, [], {})["uv"] == header
    monkeypatch.setenv(runtime.PACKAGES_ENV, "cluster")
    env = runtime.runtime_env(tmp_path, script, [], {})
    assert "pip" not in env and "uv" not in env
    monkeypatch.setenv(runtime.PACKAGES_ENV, "conda")
    with pytest.raises(ConfigError) as exc:
        runtime.runtime_env(tmp_path, script, [], {})
    assert exc.value.code == "ray.bad_packages_mode"


def test_the_entrypoint_runs_the_template_from_the_working_dir_under_the_jobs_time_limit(tmp_path):
    job_dir = tmp_path / "job"
    args = runtime.job_args(["--config", str(job_dir / "config.json")], job_dir)
    assert args == ["--config", "config.json"]
    cmd = runtime.entrypoint(job_dir / "sft.py", args, 600, notify=True)
    assert cmd == "timeout --kill-after=60 600 python _notify_after.py -- python sft.py --config config.json"


def fake_cluster(monkeypatch, nodes: list[Node]) -> None:
    from tuneforge.backends.ray import resources

    monkeypatch.setattr(resources.RayConnection, "open", classmethod(lambda cls, given=None: RayConnection(None, "http://head:8265")))
    monkeypatch.setattr(resources, "read_nodes", lambda conn: nodes)


def write_model(root: Path, name: str, config: dict) -> str:
    (root / name).mkdir(parents=True)
    (root / name / "config.json").write_text(json.dumps(config))
    return str(root / name)


def test_the_planner_plans_on_the_clusters_gpus_one_gpu_then_fsdp_on_one_node_then_ray_train(tmp_path, monkeypatch):
    from tuneforge.planner import plan

    a100_node = Node(cpus=32, memory_gb=480.0, gpus=8, gpu_type="A100")
    fake_cluster(monkeypatch, [a100_node, a100_node])
    small = plan(write_model(tmp_path, "llama-8b", LLAMA_8B), backend="ray", peft="lora", rows=1000)
    assert (small.flavor, small.gpus, small.distributed, small.cost_usd) == ("ray-A100x1", 1, None, 0.0)
    assert "Ray cluster at http://head:8265: 2 node(s)" in small.hardware_source
    assert any("entrypoint_num_gpus" in n for n in small.notes)

    big = plan(write_model(tmp_path, "llama-70b-lora", LLAMA_70B), backend="ray", peft="lora", rows=1000)
    assert big.gpus > 1 and big.distributed == "fsdp" and big.flavor == f"ray-A100x{big.gpus}", big.flavor  # one node
    cpus, gpus = entrypoint_resources(big, JobSpec(script=Path("x.py")))
    assert gpus == big.gpus and cpus == big.gpus
    assert any("FSDP" in n for n in big.notes)

    # a full fine-tune of a 70B model fits no single node of eight: only both nodes, through Ray Train
    multi = plan(write_model(tmp_path, "llama-70b-full", LLAMA_70B), backend="ray", peft="none", rows=1000)
    assert (multi.flavor, multi.gpus, multi.distributed) == ("ray-A100x16-2nodes", 16, "fsdp")
    assert any("16 Ray Train workers over 2 nodes" in n and "FSDP FULL_SHARD" in n for n in multi.notes)
    assert entrypoint_resources(multi, JobSpec(script=Path("x.py"))) == (0.0, 0.0)  # the workers hold the GPUs
    shape = train_shape(multi.flavor)
    assert (shape.workers, shape.gpus_per_worker, shape.nodes) == (16, 1.0, 2)
    cmd = runtime.entrypoint(Path("sft.py"), ["--config", "config.json"], 3600, notify=False, shape=shape,
                             strategy=multi.distributed)
    assert cmd == ("timeout --kill-after=60 3600 python _ray_train.py --workers 16 --cpus-per-worker 1 "
                   "--gpus-per-worker 1 --strategy fsdp --placement PACK -- sft.py --config config.json")


def test_a_cpu_cluster_runs_on_several_nodes_only_when_asked_and_only_when_it_has_them(tmp_path, monkeypatch):
    from tuneforge.planner import plan

    fake_cluster(monkeypatch, [Node(cpus=4, memory_gb=16.0, gpus=0, gpu_type=None)] * 2)
    tiny = write_model(tmp_path, "llama-tiny", {**LLAMA_8B, "hidden_size": 256, "intermediate_size": 512,
                                                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2})
    assert plan(tiny, backend="ray", peft="lora", rows=100).flavor == "ray-cpu4"  # one node unless asked
    two = plan(tiny, backend="ray", peft="lora", rows=100, flavor="ray-cpu2-2nodes")
    assert two.flavor == "ray-cpu2-2nodes" and any("2 Ray Train workers over 2 nodes" in n for n in two.notes)
    assert train_shape(two.flavor) == TrainShape(workers=2, cpus_per_worker=2.0, gpus_per_worker=0.0, nodes=2)
    for flavor, code in (("ray-cpu2-3nodes", "ray.flavor_unavailable"), ("ray-cpu8-2nodes", "ray.flavor_unavailable"),
                         ("a10g-small", "ray.bad_flavor")):
        with pytest.raises(RayError) as exc:
            plan(tiny, backend="ray", peft="lora", rows=100, flavor=flavor)
        assert exc.value.code == code, flavor


def test_fsdp_over_ray_train_workers_is_configured_by_accelerate_as_on_one_node(monkeypatch):
    import sys

    monkeypatch.syspath_prepend(str(REPO / "templates"))
    sys.modules.pop("_ray_train", None)
    from _ray_train import parse, strategy_env

    args, rest = parse(["--workers", "4", "--gpus-per-worker", "1", "--strategy", "fsdp", "--", "sft.py", "--config", "c.json"])
    assert (args.workers, args.gpus_per_worker, rest) == (4, 1.0, ["sft.py", "--config", "c.json"])
    assert strategy_env("ddp", 4, use_cpu=True) == {}
    env = strategy_env("fsdp", 4, use_cpu=True)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from accelerate.utils import FullyShardedDataParallelPlugin

    plugin = FullyShardedDataParallelPlugin()  # what the Trainer's Accelerator builds from a worker's environment
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.auto_wrap_policy is not None and plugin.state_dict_type.name == "SHARDED_STATE_DICT"


# ---- a real Ray head --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_head():
    from ray_cluster import RayHead

    head = RayHead().start()
    try:
        yield head
    finally:
        head.close()


@pytest.fixture
def on_cluster(ray_head, monkeypatch):
    """The cluster's address for this test; jobs run with the cluster's own Python (this venv)."""
    monkeypatch.setenv("RAY_ADDRESS", ray_head.address)
    monkeypatch.setenv(runtime.PACKAGES_ENV, "cluster")
    monkeypatch.setenv("TUNEFORGE_RAY_LOG_POLL_SECONDS", "0")
    return ray_head


FAKE = textwrap.dedent("""
    import json, os, sys, time
    P = "##tuneforge-event "
    steps, delay = int(os.environ.get("FAKE_STEPS", "3")), float(os.environ.get("FAKE_DELAY", "0.1"))
    print(f"fake job starting at {time.time()}", flush=True)
    for i in range(1, steps + 1):
        print(P + json.dumps({"type": "progress", "step": i, "total_steps": steps, "loss": 1.0 / i}), flush=True)
        time.sleep(delay)
    print("fake job done", flush=True)
""")


def submit_fake(service: JobService, **env: str):
    job_id = new_job_id()
    job_dir = job_folder(job_id)
    (job_dir / "fake.py").write_text(FAKE)
    return service.submit(JobSpec(script=job_dir / "fake.py", env=env), backend="ray", job_id=job_id, job_dir=job_dir)


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_two_jobs_queue_on_a_one_job_cluster_cancel_stops_the_first_and_a_resubmit_never_duplicates(on_cluster, monkeypatch):
    from ray.job_submission import JobSubmissionClient

    monkeypatch.setenv("TUNEFORGE_RAY_NUM_CPUS", "2")  # the whole 2-CPU head: one job at a time
    service = JobService()
    first = submit_fake(service, FAKE_STEPS="600", FAKE_DELAY="0.1")
    assert first.backend_job_id == f"tuneforge-{first.job_id}" and first.outputs["ray_resources"]["num_cpus"] == 2
    wait_until(lambda: service.status(first.job_id).stage == "RUNNING", 90, "the first job RUNNING")
    second = submit_fake(service, FAKE_STEPS="3", FAKE_DELAY="0.05")
    time.sleep(3)
    queued = service.status(second.job_id)
    assert queued.stage == "SCHEDULING" and "waiting on the Ray cluster for free resources (2.0 CPUs" in queued.message

    # a retried submit of the same job adopts Ray's job: still exactly one with its submission id
    client = JobSubmissionClient(on_cluster.address)
    again = service.backend("ray").submit(service.store.get(second.job_id), JobSpec(script=Path(second.job_dir) / "fake.py"))
    assert again["backend_job_id"] == second.backend_job_id
    assert [j.submission_id for j in client.list_jobs()].count(second.backend_job_id) == 1

    wait_until(lambda: (service.status(first.job_id).progress or {}).get("step", 0) >= 2, 60, "progress from the log")
    assert any(line.startswith("fake job starting") for line in service.logs(first.job_id, tail=50))
    canceled = service.cancel(first.job_id)
    assert canceled.stage == "CANCELED"
    wait_until(lambda: str(client.get_job_status(first.backend_job_id)) in ("STOPPED", "JobStatus.STOPPED"), 60, "Ray STOPPED")
    done = service.wait(second.job_id, timeout=120, poll_seconds=0.5)
    assert done.stage == "COMPLETED" and done.progress["step"] == 3
    began = next(float(line.rsplit(" ", 1)[1]) for line in service.logs(second.job_id, tail=None)
                 if line.startswith("fake job starting at"))
    assert began >= client.get_job_info(first.backend_job_id).end_time / 1000 - 1  # it ran only once the first stopped
    assert service.logs(second.job_id, tail=5)[-1] == "fake job done"
    assert service.status(first.job_id).stage == "CANCELED"  # Ray's STOPPED keeps the record CANCELED


@pytest.mark.slow
def test_the_tiny_model_trains_on_ray_survives_a_head_restart_as_error_and_resumes_from_its_checkpoint(
        on_cluster, tiny_llama_dir, tmp_path, capsys, monkeypatch):
    from cli_main import run_main
    from notify_receiver import Receiver

    data = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]} for i in range(16)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {tiny_llama_dir}\ndataset: {{path: {str(data)!r}, eval_fraction: 0}}\nmax_length: 64\n"
                      "eval_prompts: []\ntrain: {per_device_batch_size: 2, logging_steps: 1, save_steps: 5}\n")
    monkeypatch.delenv("RAY_ADDRESS")  # the flag alone names the cluster
    with Receiver() as rx:
        monkeypatch.setenv("TUNEFORGE_NOTIFY_URL", rx.url)
        planned = run_main(capsys, "plan", "--config", str(config), "--backend", "ray", "--ray-address", on_cluster.address,
                           "--max-steps", "400", "--json")
        assert planned.returncode == 0, planned.stderr
        plan = json.loads(planned.stdout)
        assert plan["flavor"] == "ray-cpu2" and "Ray cluster at" in plan["hardware_source"], plan
        started = run_main(capsys, "train", "--config", str(config), "--backend", "ray", "--ray-address", on_cluster.address,
                           "--max-steps", "400", "--json")
        assert started.returncode == 0, started.stderr
        job_id = json.loads(started.stdout)["job_id"]
        service = JobService()
        job = service.store.get(job_id)
        assert job.outputs["ray_resources"] == {"num_cpus": 2.0, "num_gpus": 0.0}  # from the plan: the whole node

        # mid-job (a checkpoint saved), the head goes down: the record waits, saying so, then the head returns
        out = Path(job.config.output_dir)
        wait_until(lambda: any((out / "checkpoints").glob("checkpoint-*/trainer_state.json")), 300, "a checkpoint")
        running = service.status(job_id)
        assert running.stage == "RUNNING" and running.progress["step"] >= 5
        on_cluster.stop()
        down = service.status(job_id)
        assert down.stage == "RUNNING" and "does not answer" in down.message
        on_cluster.start()
        lost = service.status(job_id)
        assert lost.stage == "ERROR" and lost.message.startswith("lost:") and "head restarted" in lost.message
        assert lost.finished_at and "tuneforge jobs resume" in lost.message
        assert any("step" in line or "loss" in line for line in service.logs(job_id, tail=200))  # the saved log

        resumed = run_main(capsys, "jobs", "resume", job_id, "--json")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        new_id = json.loads(resumed.stdout)["job_id"]
        done = service.wait(new_id, timeout=600, poll_seconds=1.0)
        assert done.stage == "COMPLETED", (done.message, service.logs(new_id, tail=40))
        assert done.resumed_from == job_id and done.config.resume_from_checkpoint
        assert done.outputs["result"]["steps"] == 400 and Path(done.outputs["result"]["adapter_dir"]).is_dir()
        logs = run_main(capsys, "jobs", "logs", new_id)
        assert logs.returncode == 0 and "train_loss" in logs.stdout  # the saved log, through the CLI
        rx.wait_for(1, timeout=60)
        assert rx.bodies()[-1]["job_id"] == new_id

        # the notification URL (a secret) reached the job only as env: not in either job folder, record or log
        secret = rx.secret_path
        for jid in (job_id, new_id):
            rec = service.store.get(jid)
            assert secret not in rec.model_dump_json()
            for f in Path(rec.job_dir).rglob("*"):
                if f.is_file() and f.stat().st_size < 5_000_000:
                    assert secret not in f.read_text(errors="replace"), f
            assert secret not in "\n".join(service.logs(jid, tail=None))


@pytest.mark.slow
def test_a_pipeline_on_ray_chains_sft_and_dpo_as_ray_jobs_and_exports_the_result_here(
        on_cluster, tiny_llama_dir, tmp_path, monkeypatch):
    """Issue 19 item 3: the train stages are Ray jobs (the DPO one on the SFT one's merged model); GGUF runs here."""
    from conftest import test_cache_dir
    from test_pipeline_local import driver_log, pipeline_file, wait_for
    from tuneforge.actions.pipeline import run_pipeline
    from tuneforge.pipelines.spec import load_spec

    monkeypatch.setenv("TUNEFORGE_TOOLCHAIN_DIR", str(test_cache_dir() / "toolchain"))
    monkeypatch.setenv("TUNEFORGE_PIPELINE_POLL_SECONDS", "0.5")
    monkeypatch.setenv("TUNEFORGE_RAY_NUM_CPUS", "1")
    pipeline, plan = run_pipeline(load_spec(pipeline_file(tmp_path, tiny_llama_dir)), backend="ray")
    assert [s.label for s in plan.stages] == ["sft", "dpo", "gguf f16"]
    status = wait_for(pipeline.pipeline_id, lambda s: s.ended, timeout=900)
    assert status.state == "COMPLETED", driver_log(pipeline.pipeline_id) + status.model_dump_json(indent=1)
    service = JobService()
    sft, dpo, gguf = (service.store.get(s.job_id) for s in status.stages)
    assert (sft.backend, dpo.backend, gguf.backend) == ("ray", "ray", "local")
    assert sft.backend_job_id and dpo.backend_job_id and sft.backend_job_id != dpo.backend_job_id
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(on_cluster.address)
    assert [client.get_job_info(j.backend_job_id).status.value for j in (sft, dpo)] == ["SUCCEEDED", "SUCCEEDED"]
    assert dpo.config.model == status.stages[0].output["source"]["model"] and dpo.config.model.endswith("merged")
    assert set(status.stages[1].output["metrics"]["eval_loss"]) == {"before", "after"}
    files = status.stages[2].output["report"]["files"]
    assert [f["quant"] for f in files] == ["f16"] and Path(files[0]["path"]).is_file()


@pytest.mark.slow
def test_a_sweep_on_ray_runs_its_trials_as_ray_jobs_two_at_a_time_and_picks_the_lowest_eval_loss(
        on_cluster, tiny_llama_dir, tmp_path, capsys, monkeypatch):
    """Issue 19 item 3: three trials, max_parallel 2, each a Ray job of one CPU on the two-CPU head."""
    from cli_main import run_main
    from ray.job_submission import JobSubmissionClient
    from test_sweep_local import sweep_file

    monkeypatch.setenv("TUNEFORGE_NO_TRACKIO", "1")
    monkeypatch.setenv("TUNEFORGE_RAY_NUM_CPUS", "1")  # two trials fit the head at once
    path = sweep_file(tmp_path, tiny_llama_dir)
    path.write_text("name: lr-on-ray\nbase: base.json\nbackend: ray\nspace:\n  grid:\n"
                    "    train.learning_rate: [1.0e-5, 5.0e-3, 1.0e-4]\n"
                    "metric: {name: eval_loss, direction: min}\nbudget: {max_trials: 3, max_parallel: 2}\n")
    started = run_main(capsys, "sweep", "run", str(path), "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    sweep_id = json.loads(started.stdout)["sweep_id"]
    waited = run_main(capsys, "sweep", "wait", sweep_id, "--timeout", "500", "--json")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    status = json.loads(waited.stdout)
    assert status["stage"] == "COMPLETED" and [t["stage"] for t in status["trials"]] == ["COMPLETED"] * 3, status
    losses = {t["job_id"]: t["metrics"]["eval_loss"] for t in status["trials"]}
    assert status["best"]["job_id"] == min(losses, key=losses.get)
    assert status["best"]["params"]["train.learning_rate"] == 5e-3

    service = JobService()
    jobs = [service.store.get(t["job_id"]) for t in status["trials"]]
    assert {j.backend for j in jobs} == {"ray"} and {j.sweep_id for j in jobs} == {sweep_id}
    assert all(j.outputs["ray_resources"] == {"num_cpus": 1.0, "num_gpus": 0.0} for j in jobs)
    client = JobSubmissionClient(on_cluster.address)
    spans = [(info.start_time, info.end_time) for info in (client.get_job_info(j.backend_job_id) for j in jobs)]
    assert all(info_end is not None for _, info_end in spans)
    (a0, a1), (b0, b1), (c0, _) = spans  # Ray's own clock, in ms
    assert a0 < b1 and b0 < a1, spans  # the first two ran at the same time on the cluster
    assert c0 >= min(a1, b1), spans  # the third only once one of them had ended: never more than max_parallel


@pytest.mark.slow
def test_a_run_planned_on_two_nodes_trains_as_two_ray_train_workers_one_per_node(on_cluster, tiny_llama_dir, tmp_path,
                                                                                 capsys):
    """Last in this file: the second node is stopped at the end (the head would list it a while longer)."""
    from cli_main import run_main
    from ray_cluster import RayNode
    from tuneforge.progress import parse_event

    node = RayNode(on_cluster, num_cpus=1).start()
    try:
        data = tmp_path / "chats.jsonl"
        rows = [{"messages": [{"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]}
                for i in range(16)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
        config = tmp_path / "run.yaml"
        config.write_text(f"model: {tiny_llama_dir}\ndataset: {{path: {str(data)!r}, eval_fraction: 0}}\nmax_length: 64\n"
                          "eval_prompts: []\ntrain: {per_device_batch_size: 2, logging_steps: 1, learning_rate: 0.005}\n")
        flags = ["--config", str(config), "--backend", "ray", "--flavor", "ray-cpu1-2nodes", "--max-steps", "10", "--json"]
        planned = run_main(capsys, "plan", *flags)
        assert planned.returncode == 0, planned.stderr
        assert json.loads(planned.stdout)["flavor"] == "ray-cpu1-2nodes"
        started = run_main(capsys, "train", *flags)
        assert started.returncode == 0, started.stderr
        service = JobService()
        job_id = json.loads(started.stdout)["job_id"]
        done = service.wait(job_id, timeout=600, poll_seconds=1.0)
        log = service.logs(job_id, tail=None)
        assert done.stage == "COMPLETED", (done.message, log[-40:])
        assert done.outputs["ray_resources"] == {"num_cpus": 0.0, "num_gpus": 0.0}  # the driver holds nothing
        assert done.outputs["ray_train"] == {"workers": 2, "cpus_per_worker": 1.0, "gpus_per_worker": 0.0, "nodes": 2}
        workers = {line.split("rank ", 1)[1].split(" ", 1)[0]: line.rsplit(" ", 1)[1]
                   for line in log if "ray train worker: rank" in line}
        assert set(workers) == {"0", "1"} and len(set(workers.values())) == 2, workers  # one worker on each node
        result = done.outputs["result"]
        assert result["steps"] == 10 and result["processes"] == 2  # DDP over gloo across the two workers
        losses = [e["loss"] for e in map(parse_event, log) if e and e["type"] == "progress" and "loss" in e]
        assert len(losses) == 10 and sum(losses[-3:]) / 3 < losses[0], losses  # events from rank 0 only, once each
        assert (Path(done.config.output_dir) / "ray_train").is_dir() and Path(result["adapter_dir"]).is_dir()
    finally:
        node.stop()
