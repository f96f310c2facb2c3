"""Two CPU processes (gloo) train the same small model under DDP and then under FSDP2
(``fully_shard``) with a GradMonitor; each rank writes what it measured and what plain
autograd says (the oracle) to OUT/rank{r}.json.  Run by tests/test_monitor_distributed.py:

    python tests/monitor_dist_worker.py OUT PORT
"""
import json
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from gradcheck_tool.monitor import GradMonitor

STEPS = 3


def build() -> nn.Module:
    torch.manual_seed(0)  # the same weights on every rank; 15 and 3 rows do not split evenly over 2
    return nn.Sequential(nn.Linear(8, 15), nn.Tanh(), nn.Linear(15, 3))


def batch(rank: int, step: int) -> torch.Tensor:
    return torch.randn(4, 8, generator=torch.Generator().manual_seed(100 * step + rank))


def full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def train(model: nn.Module, named, rank: int, log: str) -> dict:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    oracle = []
    with GradMonitor(model, optimizer=optimizer, log=log, updates_every=1) as monitor:
        for step in range(STEPS):
            model(batch(rank, step)).pow(2).mean().backward()
            # Plain autograd: each parameter's whole gradient, assembled from the shards where sharded.
            grads = {name: full(p.grad) for name, p in named()}
            weights = {name: full(p.detach()).clone() for name, p in named()}
            optimizer.step()
            after = {name: full(p.detach()) for name, p in named()}
            layers = {}
            for name in grads:
                layer = name.rsplit(".", 1)[0]
                g, d, w = layers.get(layer, (0.0, 0.0, 0.0))
                layers[layer] = (g + grads[name].pow(2).sum().item(), d + (after[name] - weights[name]).pow(2).sum().item(),
                                 w + weights[name].pow(2).sum().item())
            oracle.append({
                "grad_norm": sum(g for g, _, _ in layers.values()) ** 0.5,
                "local_norm": sum(p.grad.to_local().pow(2).sum().item() if hasattr(p.grad, "to_local")
                                  else p.grad.pow(2).sum().item() for _, p in named()) ** 0.5,
                "layers": {k: g ** 0.5 for k, (g, _, _) in layers.items()},
                "update_ratios": {k: (d / w) ** 0.5 for k, (_, d, w) in layers.items()},
            })
            optimizer.zero_grad()
    measured = [{"step": r.step, "grad_norm": r.grad_norm, "layers": dict(r.layers),
                 "update_ratios": dict(r.update_ratios)} for r in monitor.history]
    return {"measured": measured, "oracle": oracle}


def ddp(rank: int, out: str) -> dict:
    model = nn.parallel.DistributedDataParallel(build())
    return train(model, model.module.named_parameters, rank, os.path.join(out, f"ddp{rank}.jsonl"))


def fsdp2(rank: int, world: int, out: str) -> dict:
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard
    except ImportError as err:
        return {"skipped": f"FSDP2 is not in this torch ({err})"}
    mesh = init_device_mesh("cpu", (world,))
    model = build()
    for layer in model:
        if isinstance(layer, nn.Linear):
            fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return train(model, model.named_parameters, rank, os.path.join(out, f"fsdp{rank}.jsonl"))


def run(rank: int, world: int, out: str, port: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        result = {"ddp": ddp(rank, out), "fsdp2": fsdp2(rank, world, out)}
    finally:
        dist.destroy_process_group()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    mp.spawn(run, args=(2, sys.argv[1], sys.argv[2]), nprocs=2)
