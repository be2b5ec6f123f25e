"""The accelerate configurations under configs/accelerate/ are what accelerate accepts, and
the FSDP optimizer state of a checkpoint (odyssey.adapt.checkpoint) resumes exactly.

accelerate runs FSDP only on accelerators (on CPUs it falls back to DDP), so the
multi-process check drives torch's FSDP2 (``fully_shard``) directly on two CPU processes
(gloo): checkpointed with odyssey's functions after 2 of 4 steps, then resumed in fresh
processes for the last 2, it ends with the same weights as the 4 uninterrupted steps; the
same checkpoint also resumes in one process without FSDP.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "accelerate"
EXPECTED = {  # file: (distributed_type, machines)
    "cpu-2proc.yaml": ("MULTI_GPU", 1),
    "ddp.yaml": ("MULTI_GPU", 1),
    "fsdp.yaml": ("FSDP", 1),
    "deepspeed-zero2.yaml": ("DEEPSPEED", 1),
    "deepspeed-zero3.yaml": ("DEEPSPEED", 1),
    "multi-node.yaml": ("MULTI_GPU", 2),
}


def test_every_config_is_listed_and_documented():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(EXPECTED)
    readme = (CONFIGS / "README.md").read_text()
    for name in EXPECTED:
        assert f"configs/accelerate/{name}" in readme, name
    # every documented launch runs odyssey the way the repo does (python -m odyssey)
    launches = re.findall(r"accelerate launch [^\n]*", readme)
    assert launches and all(" -m odyssey " in cmd for cmd in launches)


def launch_env(config: Path) -> tuple[object, dict]:
    """What `accelerate launch --config_file CONFIG -m odyssey adapt` hands its processes:
    accelerate's own argument checks and environment preparation, without starting anything."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config), "-m", "odyssey", "adapt"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as accelerate's launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        _, env = prepare_deepspeed_cmd_env(args)
    else:
        env = prepare_multi_gpu_env(args)
    return args, {k: v for k, v in env.items() if k.startswith(("ACCELERATE_", "FSDP_"))}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_accelerate_loads_and_launches_the_config(name, monkeypatch):
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    monkeypatch.chdir(REPO)  # the DeepSpeed configs name their JSON relative to the repository
    cfg = load_config_from_file(str(CONFIGS / name))
    kind, machines = EXPECTED[name]
    assert isinstance(cfg, ClusterConfig) and cfg.distributed_type.value == kind
    assert cfg.num_machines == machines
    args, env = launch_env(CONFIGS / name)
    assert args.num_processes == cfg.num_processes >= 2
    if machines > 1:
        assert args.main_process_ip and args.main_process_port and args.num_processes % machines == 0
    assert args.use_fsdp == (kind == "FSDP") and args.use_deepspeed == (kind == "DEEPSPEED")


def test_fsdp_config_gives_fsdp2_full_state_dict_and_wraps_transformer_blocks(tiny_llama_dir, tiny_gpt2_dir):
    from accelerate.utils import FullyShardedDataParallelPlugin, patch_environment
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from torch.distributed.fsdp import StateDictType
    from transformers import AutoModelForCausalLM

    _, env = launch_env(CONFIGS / "fsdp.yaml")
    with patch_environment(**env):
        plugin = FullyShardedDataParallelPlugin()
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.state_dict_type == StateDictType.FULL_STATE_DICT
    for path, block in ((tiny_llama_dir, "LlamaDecoderLayer"), (tiny_gpt2_dir, "GPT2Block")):
        model = AutoModelForCausalLM.from_pretrained(path)
        policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
        wrapped = [type(m).__name__ for m in model.modules() if policy(m)]
        assert wrapped == [block] * model.config.num_hidden_layers, path


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs_give_the_zero_stage_and_a_micro_batch(stage, monkeypatch):
    from accelerate.utils import DeepSpeedPlugin, patch_environment

    monkeypatch.chdir(REPO)
    _, env = launch_env(CONFIGS / f"deepspeed-zero{stage}.yaml")
    with patch_environment(**env):
        plugin = DeepSpeedPlugin()
    ds = plugin.deepspeed_config
    assert plugin.zero_stage == stage and ds["zero_optimization"]["stage"] == stage
    # odyssey's loop prepares no DataLoader, so accelerate cannot fill "auto" here
    assert isinstance(ds["train_micro_batch_size_per_gpu"], int) and ds["gradient_accumulation_steps"] == 1
    if stage == 3:
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert json.loads((CONFIGS / f"deepspeed-zero{stage}.json").read_text())["zero_optimization"]["stage"] == stage


# --- FSDP2 checkpoint: optimizer state saved sharded, resumed exactly -----------------

WORKER = r'''
import os, sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM

from odyssey.adapt.checkpoint import load_optimizer_state, save_optimizer_state

model_dir, out, phase = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
fsdp = phase != "resume-1proc"
if fsdp:
    dist.init_process_group("gloo")
rank, world = (dist.get_rank(), dist.get_world_size()) if fsdp else (0, 1)
acc = SimpleNamespace(distributed_type=None, is_main_process=rank == 0, process_index=rank,
                      wait_for_everyone=dist.barrier if fsdp else (lambda: None))
ckpt = out.parent / "ckpt"
model = AutoModelForCausalLM.from_pretrained(ckpt if phase.startswith("resume") else model_dir)
model.config.use_cache = False
if fsdp:
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)


def batch(step, r):  # each rank's data is a function of (step, rank); one process takes both
    g = torch.Generator().manual_seed(1000 * step + r)
    return torch.randint(0, model.config.vocab_size, (2, 24), generator=g)


def train(steps):
    for step in steps:
        ids = batch(step, rank) if fsdp else torch.cat([batch(step, r) for r in range(2)])
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def full_weights():
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


if phase == "whole":  # 4 steps, checkpointed after 2 (saving must not disturb training)
    train(range(2))
    weights = full_weights()
    if rank == 0:
        model.save_pretrained(ckpt, state_dict=weights)
    acc.wait_for_everyone()
    save_optimizer_state(ckpt, acc, model, opt)
    assert not (ckpt / "optimizer.pt").exists()
    train(range(2, 4))
else:
    load_optimizer_state(ckpt, acc, opt, model)
    train(range(2, 4))
weights = full_weights()
if rank == 0:
    save_file({k: v.detach().clone().contiguous() for k, v in weights.items()}, str(out))
if fsdp:
    dist.destroy_process_group()
'''


@pytest.mark.slow
def test_fsdp2_optimizer_state_checkpoint_resumes_exactly(tmp_path, tiny_llama_dir):
    from safetensors.torch import load_file

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def run(phase, procs=2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_port", "29543", str(script)] if procs > 1 else [sys.executable, str(script)]
        proc = subprocess.run([*cmd, str(tiny_llama_dir), str(tmp_path / f"{phase}.safetensors"), phase],
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return tmp_path / f"{phase}.safetensors"

    whole = load_file(str(run("whole")))
    full = torch.load(tmp_path / "ckpt" / "optimizer-full.pt", weights_only=True)
    from transformers import AutoModelForCausalLM

    names = {n for n, _ in AutoModelForCausalLM.from_pretrained(tiny_llama_dir).named_parameters()}
    assert set(full["state"]) == names  # one full (unsharded) entry per parameter, by name
    name = "model.layers.0.mlp.down_proj.weight"
    assert full["state"][name]["exp_avg"].shape == whole[name].shape
    resumed = load_file(str(run("resume")))
    assert whole.keys() == resumed.keys()
    for k in whole:
        assert torch.equal(whole[k], resumed[k]), k
    # the same checkpoint, resumed without FSDP in one process (both ranks' data per step)
    single = load_file(str(run("resume-1proc", procs=1)))
    for k in whole:
        torch.testing.assert_close(single[k], whole[k], rtol=1e-4, atol=1e-5)
