"""Run a template on several nodes of a Ray cluster through Ray Train (the ray backend's multi-node runs).

    python _ray_train.py --workers N --cpus-per-worker C --gpus-per-worker G [--strategy ddp|fsdp] \
        -- sft.py --config config.json

This is the Ray job's driver: it asks for nothing itself (entrypoint_num_cpus=0) and starts a TorchTrainer
with N workers (ScalingConfig: C CPUs and G GPUs each, packed on as few nodes as fit, or one per node
with --placement SPREAD: the CPU flavors `ray-cpuC-Nnodes`). Every worker runs
the same template with the same config, in the job's working directory on its node, as `__main__`; Ray
Train has already set up the process group (NCCL on GPUs, gloo on CPUs) and RANK, LOCAL_RANK, WORLD_SIZE,
so the template's own relaunch under accelerate is skipped (_launch.py) and transformers' Trainer joins
the group. Only rank 0 prints events and writes the results (_events.py, the Trainer).

`--strategy fsdp` gives every worker the environment `accelerate launch` would give it for the same
generated config (_launch.accelerate_config: FULL_SHARD, transformer-block wrapping, FSDP2), computed by
accelerate itself, so FSDP across nodes is configured exactly as FSDP on one node.

Ray Train's own files (its run state) go under the run's output_dir (`ray_train/`), never ~/ray_results;
workers do not change directory to it (RAY_CHDIR_TO_TRIAL_DIR=0). A worker that fails fails the run
(FailureConfig(max_failures=0)): tuneforge's retry and resume decide what happens next.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

#: the environment variables accelerate's launcher sets for a strategy that a worker takes on
ACCELERATE_PREFIXES = ("ACCELERATE_USE_FSDP", "FSDP_")


def strategy_env(strategy: str, workers: int, use_cpu: bool) -> dict[str, str]:
    """What `accelerate launch --config_file <the generated config>` puts in each process's environment for
    STRATEGY (ddp: nothing, the process group is all it needs), from accelerate's own launch code."""
    if strategy != "fsdp":
        return {}
    from _launch import accelerate_config
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "accelerate_fsdp.json"
        path.write_text(json.dumps(accelerate_config("fsdp", workers, use_cpu)), encoding="utf-8")
        args = launch_command_parser().parse_args(["--config_file", str(path), "--num_processes", str(workers),
                                                   "--main_process_port", "0", "template.py"])
        _validate_launch_command(args)
        env = prepare_multi_gpu_env(args)
    return {k: v for k, v in env.items() if k.startswith(ACCELERATE_PREFIXES)}


def train_loop_per_worker(ctx: dict) -> None:
    """One worker: the template as `__main__`, with the driver's arguments and the strategy's environment."""
    import ray

    os.environ.update(ctx["env"])
    print(f"ray train worker: rank {os.environ.get('RANK')} of {os.environ.get('WORLD_SIZE')} on node "
          f"{ray.get_runtime_context().get_node_id()[:12]}", flush=True)
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    sys.argv = [ctx["script"], *ctx["args"]]
    try:
        runpy.run_path(ctx["script"], run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise RuntimeError(f"{ctx['script']} exited with status {exc.code} on rank "
                               f"{os.environ.get('RANK', '?')}") from None


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: _ray_train.py --workers N ... -- template.py --config config.json")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--cpus-per-worker", type=float, default=1.0)
    parser.add_argument("--gpus-per-worker", type=float, default=0.0)
    parser.add_argument("--strategy", choices=("ddp", "fsdp"), default="ddp")
    parser.add_argument("--placement", choices=("PACK", "SPREAD"), default="PACK",
                        help="PACK: as few nodes as hold the workers (GPU nodes); SPREAD: one worker per node")
    args = parser.parse_args(argv[:cut])
    rest = argv[cut + 1:]
    if not rest:
        raise SystemExit("_ray_train.py: no template after `--`")
    return args, rest


def output_dir(template_args: list[str]) -> Path:
    """The run's output_dir from its config (where Ray Train keeps its run state)."""
    if "--config" in template_args:
        cfg = json.loads(Path(template_args[template_args.index("--config") + 1]).read_text(encoding="utf-8"))
        return Path(cfg.get("output_dir") or "outputs").resolve()
    return Path("outputs").resolve()


def main(argv: list[str] | None = None) -> int:
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    script, template_args = rest[0], rest[1:]
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"  # workers stay in the job's working directory
    os.environ["RAY_DEDUP_LOGS"] = "0"  # every worker line reaches the job's log as printed...
    os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] = "0"  # ...once (Train's print patch would log it a second time)
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    use_gpu = args.gpus_per_worker > 0
    resources = {"CPU": args.cpus_per_worker, **({"GPU": args.gpus_per_worker} if use_gpu else {})}
    storage = output_dir(template_args) / "ray_train"
    storage.mkdir(parents=True, exist_ok=True)
    ray.init()
    print(f"ray train: {args.workers} workers ({resources}, {args.placement}), {args.strategy}, {script}", flush=True)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"script": script, "args": template_args,
                           "env": strategy_env(args.strategy, args.workers, use_cpu=not use_gpu)},
        scaling_config=ScalingConfig(num_workers=args.workers, use_gpu=use_gpu, resources_per_worker=resources,
                                     placement_strategy=args.placement),
        run_config=RunConfig(name=f"tuneforge-{os.environ.get('TUNEFORGE_JOB_ID', 'run')}", storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=0)),
    )
    try:
        trainer.fit()
    except Exception as exc:  # noqa: BLE001 - Ray Train wraps the worker's error; its message is what matters
        print(f"ERROR: the Ray Train run failed: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
