"""One engine's side of the native demo: a process that trains the demo's GPT-2 on one library.

``python engine_worker.py orchard`` imports orchard_core and orchard_flash only (never torch);
``python engine_worker.py torch`` imports torch only. The driver (train_native.py) sends one JSON
command per line on stdin and reads one JSON reply per line on stdout, so that it can run the two
engines' steps alternately, never at the same time, and time each one where it runs.

Commands: ``{"cmd": "setup", ...}`` builds the model (weights from the library's own initialisation,
saved to ``weights``, or loaded from it), the optimizer and the data; ``{"cmd": "step", "step": i,
"lr": lr}`` runs one training step on batch i; ``{"cmd": "eval"}`` returns the validation loss;
``{"cmd": "quit"}`` ends the process. Errors come back as ``{"error": "..."}``.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_common import load_corpus
from gpt2_model import GPT2Config, gpt2_class

EVAL_BATCHES = 4


class CharData:
    """The corpus as int64 token ids split 90/10, and seeded batch windows (numpy: engine-neutral)."""

    def __init__(self, text: str, seq_len: int) -> None:
        chars = sorted(set(text))
        lookup = np.zeros(max(map(ord, chars)) + 1, dtype=np.int64)
        lookup[[ord(c) for c in chars]] = np.arange(len(chars))
        tokens = lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)]
        split = int(len(tokens) * 0.9)
        self.vocab_size, self.seq_len = len(chars), seq_len
        self.train, self.val = tokens[:split], tokens[split:]
        for name, part in (("training", self.train), ("validation", self.val)):
            if len(part) < seq_len + 2:
                raise ValueError(
                    f"the corpus's {name} split has {len(part)} characters, fewer than seq_len + 2 = "
                    f"{seq_len + 2}; use a longer corpus or a shorter --seq-len"
                )

    def batches(self, tokens: np.ndarray, count: int, batch: int, seed: int) -> np.ndarray:
        """(count, batch, seq_len + 1) windows at starts drawn from numpy's generator at `seed`."""
        starts = np.random.default_rng(seed).integers(0, len(tokens) - self.seq_len - 1, (count, batch))
        return tokens[starts[..., None] + np.arange(self.seq_len + 1)]


class Engine:
    """The model, optimizer and data of one library."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "orchard":
            self.lib = importlib.import_module("orchard_core")
            importlib.import_module(
                "orchard_flash"
            )  # the attention kernels behind F.scaled_dot_product_attention
        elif name == "torch":
            self.lib = importlib.import_module("torch")
        else:
            raise ValueError(f"unknown engine {name!r}: expected 'orchard' or 'torch'")

    def setup(self, options: dict[str, Any]) -> dict[str, Any]:
        lib = self.lib
        if options.get("threads"):
            lib.set_num_threads(options["threads"])
        text, _ = load_corpus(options.get("corpus"))
        self.data = CharData(text, options["seq_len"])
        config = GPT2Config(
            vocab_size=self.data.vocab_size,
            seq_len=options["seq_len"],
            n_layer=options["n_layer"],
            n_head=options["n_head"],
            n_embd=options["n_embd"],
            dropout=options["dropout"],
        )
        lib.manual_seed(options["seed"])
        self.model = gpt2_class(lib)(config)
        weights = options["weights"]
        if options["write_weights"]:
            self.save(self.model.state_dict(), weights)
        else:
            self.model.load_state_dict(self.load(weights))
        self.device = options.get("device", "cpu")
        self.model.to(self.device)
        # bfloat16: products in bfloat16 under the library's autocast, float32 master weights.
        self.autocast = options.get("dtype", "float32") == "bfloat16"
        self.optimizer = lib.optim.AdamW(
            self.model.parameters(), lr=options["lr"], weight_decay=0.1, betas=(0.9, 0.95)
        )
        seed, batch = options["seed"], options["batch_size"]
        self.train_batches = self.data.batches(self.data.train, options["steps"], batch, seed)
        self.val_batches = self.data.batches(self.data.val, EVAL_BATCHES, batch, seed + 1)
        lib.manual_seed(options["seed"] + 2)  # dropout streams
        return {
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "vocab_size": self.data.vocab_size,
            "threads": lib.get_num_threads(),
            "version": lib.__version__,
            "cpu_isa": lib.cpu_isa() if self.name == "orchard" else None,
            "config": asdict(config),
        }

    def save(self, state: dict[str, Any], path: str) -> None:
        if self.name == "orchard":
            self.lib.save_file(state, path)
        else:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in state.items()}, path)

    def load(self, path: str) -> dict[str, Any]:
        if self.name == "orchard":
            return self.lib.load_file(path)
        from safetensors.torch import load_file

        return load_file(path)

    def precision(self) -> Any:
        """torch.autocast or orchard_core.autocast to bfloat16 when asked for, else nothing."""
        device_type = self.device.split(":")[0]
        return self.lib.autocast(device_type, dtype=self.lib.bfloat16, enabled=self.autocast)

    def tensor(self, values: np.ndarray) -> Any:
        return self.lib.from_numpy(np.ascontiguousarray(values)).to(self.device)

    def step(self, index: int, lr: float) -> dict[str, Any]:
        lib, model, optimizer = self.lib, self.model, self.optimizer
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = self.train_batches[index]
        tick = time.perf_counter()
        inputs, targets = self.tensor(batch[:, :-1]), self.tensor(batch[:, 1:])
        with self.precision():
            loss = model(inputs, targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = loss.item()
        return {"loss": value, "seconds": time.perf_counter() - tick}

    def profile(self, index: int, lr: float) -> dict[str, Any]:
        """One more training step under the library's profiler: its ops by self time. orchard's
        times are the host's (an op's call to return); torch's add the GPU's kernel times."""
        on_gpu = self.device != "cpu"
        if self.name == "orchard":
            recorder, sort_by = self.lib.profiler.profile(), "self_cpu_time_total"
        else:
            from torch.profiler import ProfilerActivity, profile

            activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if on_gpu else [])]
            recorder = profile(activities=activities)
            sort_by = "self_cuda_time_total" if on_gpu else "self_cpu_time_total"
        with recorder:
            seconds = self.step(index, lr)["seconds"]
        return {"table": recorder.key_averages().table(sort_by=sort_by, row_limit=30), "seconds": seconds}

    def evaluate(self) -> dict[str, Any]:
        self.model.eval()  # no dropout, so no random draws
        with self.lib.no_grad(), self.precision():
            losses = [
                self.model(self.tensor(b[:, :-1]), self.tensor(b[:, 1:])).item() for b in self.val_batches
            ]
        self.model.train()
        # The orchard process must train without torch: the driver records whether it was loaded.
        return {"loss": math.fsum(losses) / len(losses), "torch_loaded": "torch" in sys.modules}


def serve(engine: Engine) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["cmd"] == "quit":
                return
            if command["cmd"] == "setup":
                reply = engine.setup(command["options"])
            elif command["cmd"] == "step":
                reply = engine.step(command["step"], command["lr"])
            elif command["cmd"] == "profile":
                reply = engine.profile(command["step"], command["lr"])
            elif command["cmd"] == "eval":
                reply = engine.evaluate()
            else:
                reply = {"error": f"unknown command {command['cmd']!r}"}
        except Exception as error:  # sent to the driver, which stops with it
            reply = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve(Engine(sys.argv[1]))
