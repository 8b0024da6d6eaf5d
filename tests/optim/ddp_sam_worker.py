"""One rank of ``test_sam_ddp.py``: SAM and SSAM on a DDP-wrapped float64 linear layer.

Run as ``python ddp_sam_worker.py RANK WORLD_SIZE PORT SETUP OUT_DIR``. SETUP
(``torch.save``) holds the initial weights, every rank's share of the batch and the
hyper-parameters. ``OUT_DIR/rank{RANK}.pt`` receives, per optimizer, the final weights,
the number of times DDP's all-reduce communication hook ran during the SAM steps, and
how many buckets one ordinary synchronized backward all-reduces.
``OUT_DIR/rank{RANK}-skip.pt`` receives the GradScaler scenario: the weights and the
loss scale after each step, where rank 0's first pass of step 1 overflows.
"""

from __future__ import annotations

import datetime
import math
import sys

import torch
import torch._dynamo  # noqa: F401  (DDP imports it: do it before the rendezvous, not inside)
import torch.distributed as dist
from sam_truth import least_squares_loss
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.nn.parallel import DistributedDataParallel

from samlab.optim import SAM, SSAM


def run(cls, setup: dict, rank: int) -> dict:
    model = nn.Linear(*setup["shape"]).double()
    model.load_state_dict(setup["init"])
    ddp = DistributedDataParallel(model)
    calls = [0]

    def counting_allreduce(process_group, bucket):
        calls[0] += 1
        return allreduce_hook(process_group, bucket)

    ddp.register_comm_hook(None, counting_allreduce)
    X, Y = setup["X"][rank], setup["Y"][rank]
    opt = cls(ddp.parameters(), rho=setup["rho"], lr=setup["lr"], momentum=setup["momentum"],
              model=ddp)

    def closure():
        opt.zero_grad()
        loss = least_squares_loss(ddp(X), Y)
        loss.backward()
        return loss

    for _ in range(setup["steps"]):
        opt.step(closure)
    sam_calls = calls[0]

    # One ordinary synchronized backward: the number of buckets in one all-reduce round.
    opt.zero_grad()
    least_squares_loss(ddp(X), Y).backward()
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "allreduce_calls": sam_calls,
        "buckets": calls[0] - sam_calls,
    }


def run_overflow_on_one_rank(setup: dict, rank: int) -> dict:
    """Float32 SAM with a GradScaler; rank 0's first-pass gradient is inf at step 1."""
    # A group of its own with a short timeout: if the ranks fall out of step, the test
    # fails in seconds instead of waiting out the main group's timeout.
    group = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=15))
    model = nn.Linear(*setup["shape"])
    model.load_state_dict({k: v.float() for k, v in setup["init"].items()})
    ddp = DistributedDataParallel(model, process_group=group)
    X, Y = setup["X"][rank].float(), setup["Y"][rank].float()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    opt = SAM(ddp.parameters(), rho=setup["rho"], lr=setup["lr"], momentum=setup["momentum"],
              model=ddp)
    state = {"call": 0, "poison": None}
    model.weight.register_hook(
        lambda g: torch.full_like(g, math.inf) if state["call"] == state["poison"] else g)

    def closure():
        state["call"] += 1
        opt.zero_grad()
        loss = least_squares_loss(ddp(X), Y)
        scaler.scale(loss).backward()
        return loss

    weights, scales = [[p.detach().clone() for p in model.parameters()]], [scaler.get_scale()]
    for step in range(3):
        state["call"], state["poison"] = 0, 1 if (step == 1 and rank == 0) else None
        opt.step(closure, scaler=scaler)
        scaler.update()
        weights.append([p.detach().clone() for p in model.parameters()])
        scales.append(scaler.get_scale())
    dist.barrier(group)
    return {"weights": weights, "scales": scales}


def main(rank: int, world_size: int, port: int, setup_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world_size, timeout=datetime.timedelta(seconds=60))
    try:
        setup = torch.load(setup_path, weights_only=True)
        results = {"sam": run(SAM, setup, rank), "ssam": run(SSAM, setup, rank)}
        dist.barrier()
        torch.save(results, f"{out_dir}/rank{rank}.pt")
        torch.save(run_overflow_on_one_rank(setup, rank), f"{out_dir}/rank{rank}-skip.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    rank, world_size, port, setup_path, out_dir = sys.argv[1:]
    main(int(rank), int(world_size), int(port), setup_path, out_dir)
