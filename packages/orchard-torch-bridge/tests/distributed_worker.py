"""One rank of test_distributed.py: ``python distributed_worker.py CASE RANK WORLD DIR``.

The rank joins a gloo process group through a file store in DIR, reads what the test wrote to
DIR/inputs.pt (GPT-2 configs, initial weights, the batch, seeds), runs CASE and saves what the test
compares to DIR/rank{RANK}.pt. Cases:

* ``ddp``, ``fsdp2``: the model wrapped in DistributedDataParallel or FSDP2's ``fully_shard``.
  One training step, each rank on its slice of the batch: the gradients without dropout, then with
  dropout after ``torch.manual_seed(rank_seeds[rank])``. Then every rank runs the same tokens with
  attention dropout, seeded alike and then per rank: the logits show whether the ranks' dropout
  masks are equal.
* ``compile``: two SGD steps of ``torch.compile(DDP(model))`` beside an eager DDP copy: both
  models' gradients at each step.
* ``ring``: ``ring_attention`` on the rank's chunk of the sequence, without and with the causal
  mask: its output and the gradients of its chunks of query, key and value.
"""

from __future__ import annotations

import sys
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import orchard_torch_bridge.gpt2
import torch
import torch.distributed as dist
from orchard_torch_bridge.ring import ring_attention
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from torch.nn.parallel import DistributedDataParallel
from transformers import GPT2Config, GPT2LMHeadModel

# A collective that waits longer than this raises here, so a rank that died cannot hang the other.
COLLECTIVE_TIMEOUT = timedelta(seconds=60)


def build(config: dict[str, Any], state: dict[str, torch.Tensor]) -> GPT2LMHeadModel:
    model = GPT2LMHeadModel(GPT2Config(**config))
    model.load_state_dict(state)
    return model


def gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter's whole gradient (FSDP2's shards gathered: a collective on every rank)."""
    grads = {}
    for name, param in model.named_parameters():
        grad = param.grad
        if isinstance(grad, DTensor):
            grad = grad.full_tensor()
        assert grad is not None, name
        grads[name] = grad.detach().clone()
    return grads


def wrap(kind: str, model: GPT2LMHeadModel) -> torch.nn.Module:
    if kind == "ddp":
        return DistributedDataParallel(model)
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for block in model.transformer.h:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def train_step(kind: str, inputs: dict[str, Any], rank: int) -> dict[str, Any]:
    ids = inputs["ids"].chunk(dist.get_world_size())[rank]
    results = {}
    for name in ("plain", "dropout"):
        model = build(inputs["configs"][name], inputs["state"])
        wrapped = wrap(kind, model)
        torch.manual_seed(inputs["rank_seeds"][rank])
        wrapped(ids, labels=ids).loss.backward()
        results[name] = gradients(model)
    return results


def masks(kind: str, inputs: dict[str, Any], rank: int) -> dict[str, Any]:
    model = build(inputs["configs"]["attention_dropout"], inputs["state"])
    wrapped = wrap(kind, model)
    ids = inputs["ids"]  # the same tokens on every rank
    results = {}
    with torch.no_grad():
        model.eval()
        results["eval"] = wrapped(ids).logits
        model.train()
        torch.manual_seed(inputs["alike_seed"])
        results["alike"] = wrapped(ids).logits
        torch.manual_seed(inputs["rank_seeds"][rank])
        results["per_rank"] = wrapped(ids).logits
    return results


def compiled_steps(inputs: dict[str, Any], rank: int) -> dict[str, Any]:
    ids = inputs["ids"].chunk(dist.get_world_size())[rank]
    models = {
        "eager": build(inputs["configs"]["plain"], inputs["state"]),
        "compiled": build(inputs["configs"]["plain"], inputs["state"]),
    }
    traced_ops: list[str] = []
    aot_eager = torch._dynamo.lookup_backend("aot_eager")

    def backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]) -> Any:
        """aot_eager, noting the orchard ops each graph holds (DDP splits the model in several)."""
        traced_ops.extend(str(n.target) for n in graph.graph.nodes if "orchard" in str(n.target))
        return aot_eager(graph, example_inputs)

    nets: dict[str, Any] = {name: DistributedDataParallel(model) for name, model in models.items()}
    nets["compiled"] = torch.compile(nets["compiled"], backend=backend)
    optimizers = {name: torch.optim.SGD(model.parameters(), lr=0.5) for name, model in models.items()}
    results: dict[str, Any] = {name: [] for name in models}
    for _ in range(2):
        for name, net in nets.items():
            net(ids, labels=ids).loss.backward()
            results[name].append(gradients(models[name]))
            optimizers[name].step()
            optimizers[name].zero_grad()
    results["traced_ops"] = traced_ops
    return results


def ring(inputs: dict[str, Any], rank: int) -> dict[str, Any]:
    world = dist.get_world_size()
    results = {}
    for mask in ("full", "causal"):
        q, k, v = (t.chunk(world, dim=2)[rank].clone().requires_grad_() for t in inputs["qkv"])
        out = ring_attention(q, k, v, is_causal=mask == "causal")
        out.backward(inputs["dout"].chunk(world, dim=2)[rank])
        results[mask] = {"out": out.detach(), "dq": q.grad, "dk": k.grad, "dv": v.grad}
    return results


def main(case: str, rank: int, world: int, directory: Path) -> None:
    torch.set_num_threads(1)
    orchard_torch_bridge.gpt2.register()
    # Stock sdpa in place of the orchard op would pass every comparison: make it fail instead.
    warnings.simplefilter("error", orchard_torch_bridge.gpt2.OrchardFallbackWarning)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{directory / 'store'}",
        rank=rank,
        world_size=world,
        timeout=COLLECTIVE_TIMEOUT,
    )
    try:
        inputs = torch.load(directory / "inputs.pt")
        if case in ("ddp", "fsdp2"):
            results = {**train_step(case, inputs, rank), "masks": masks(case, inputs, rank)}
        elif case == "compile":
            results = compiled_steps(inputs, rank)
        elif case == "ring":
            results = ring(inputs, rank)
        else:
            raise ValueError(f"unknown case {case!r}: expected ddp, fsdp2, compile or ring")
        torch.save(results, directory / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
