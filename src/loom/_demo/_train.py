"""One rank of the demo's training: ``python -m loom._demo._train CONFIG.json`` (RANK, WORLD_SIZE, MASTER_*).

Trains with DP-SGD under loom.parallel's DDP on batches from a DataLoader2, saves a mid-epoch checkpoint in
the last epoch, then resumes from it in a fresh loader and model and checks that the batches and the final
weights are those of the uninterrupted run. Writes ``rank-R.json`` with what the parent prints and plots.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from loom._demo import _data, _model, _pipeline
from loom.parallel import DistributedDataParallel


def _progress(rank: int, total: int | None, desc: str) -> Any:
    if rank != 0:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr)


def _save(path: Path, obj: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)


class _Run:
    """Model, optimizer, noise generator and DDP wrapper of one rank, fresh or from a checkpoint."""

    def __init__(self, cfg: dict[str, Any], device: torch.device, checkpoint: dict[str, Any] | None = None):
        torch.manual_seed(cfg["seed"])  # the same initial weights everywhere (DDP broadcasts rank 0's anyway)
        self.model = _model.DigitsCNN().to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg["lr"], momentum=0.9)
        self.noise_gen = torch.Generator().manual_seed(cfg["seed"] + 1)  # alike on every rank: see the NOTE
        self.step_count = 0
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.noise_gen.set_state(checkpoint["noise_gen"])
            self.step_count = checkpoint["step"]
        ids: list[int | torch.device] | None = [device] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.per_sample_grads = _model.per_sample_grads_fn(self.model)

    def step(self, cfg: dict[str, Any], batch: Any, device: torch.device, check: bool = False) -> Any:
        batch = (batch[0].to(device), batch[1].to(device))
        # a cosine learning-rate decay over the run: the noise of the last steps moves the weights less
        progress = min(1.0, self.step_count / cfg["total_steps"])
        for group in self.optimizer.param_groups:
            group["lr"] = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * progress))
        self.step_count += 1
        return _model.dp_sgd_step(
            self.ddp,
            self.model,
            self.optimizer,
            self.per_sample_grads,
            batch,
            clip=cfg["clip"],
            noise_multiplier=cfg["noise_multiplier"],
            global_batch=cfg["batch_size"] * dist.get_world_size(),
            noise_gen=self.noise_gen,
            check=check,
        )

    def checkpoint(self, loader_state: dict[str, Any]) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "noise_gen": self.noise_gen.get_state(),
            "step": self.step_count,
            "loader": loader_state,
        }


def _mean_over_ranks(value: float, device: torch.device) -> float:
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def train(cfg: dict[str, Any]) -> dict[str, Any]:
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device(f"cuda:{rank}") if cfg["device"] == "cuda" else torch.device("cpu")
    out = Path(cfg["out"])
    (_, _), (test_x, test_y) = _data.split(*_data.load_digits(), cfg["test_fraction"], cfg["seed"])
    test_images = torch.stack(
        [_pipeline.decode(_Sample(i, x, y))[0] for i, (x, y) in enumerate(zip(test_x, test_y))]
    )
    test_images, test_y = test_images.to(device), test_y.to(device)
    shards = Path(cfg["shards"])

    run = _Run(cfg, device)
    loader = _pipeline.make_loader(_pipeline.build_pipeline(shards, cfg["batch_size"]), cfg["workers"], True)
    loader.seed(cfg["seed"])
    losses: list[float] = []
    epoch_acc: list[float] = []
    steps_per_epoch: int | None = None
    after_checkpoint: list[tuple[torch.Tensor, torch.Tensor]] = []
    checkpoint_step = None
    grad_check = None
    started = time.perf_counter()
    for epoch in range(cfg["epochs"]):
        last = epoch == cfg["epochs"] - 1
        if last:
            checkpoint_step = max(1, (steps_per_epoch or 4) // 2)
        bar = _progress(rank, steps_per_epoch, f"epoch {epoch + 1}/{cfg['epochs']}")
        steps = 0
        for batch in loader:
            if last and steps >= checkpoint_step:  # type: ignore[operator]
                after_checkpoint.append(batch)
            loss, diff = run.step(cfg, batch, device, check=grad_check is None)
            if grad_check is None:
                grad_check = _mean_over_ranks(diff or 0.0, device)
            losses.append(_mean_over_ranks(loss, device))
            steps += 1
            if last and steps == checkpoint_step:
                _save(out / f"checkpoint-rank{rank}.pt", run.checkpoint(loader.state_dict()))
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        steps_per_epoch = steps
        epoch_acc.append(_model.accuracy(run.model, test_images, test_y))
        if rank == 0:
            print(
                f"epoch {epoch + 1}: train loss {sum(losses[-steps:]) / steps:.4f}, test accuracy {epoch_acc[-1]:.2%}",
                flush=True,
            )
    train_s = time.perf_counter() - started
    loader.shutdown()
    final = {k: v.detach().clone() for k, v in run.model.state_dict().items()}

    # Resume: a fresh model, optimizer and loader from the mid-epoch checkpoint, to the end of the epoch.
    checkpoint = torch.load(out / f"checkpoint-rank{rank}.pt", weights_only=False)
    resumed = _Run(cfg, device, checkpoint)
    loader = _pipeline.make_loader(_pipeline.build_pipeline(shards, cfg["batch_size"]), cfg["workers"], True)
    loader.load_state_dict(checkpoint["loader"])
    seen = []
    for batch in loader:
        seen.append(batch)
        resumed.step(cfg, batch, device)
    loader.shutdown()
    same_batches = len(seen) == len(after_checkpoint) and all(
        torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(seen, after_checkpoint)
    )
    weight_diff = max(float((resumed.model.state_dict()[k] - v).abs().max()) for k, v in final.items())
    return {
        "rank": rank,
        "world_size": world,
        "losses": losses,
        "steps_per_epoch": steps_per_epoch,
        "epoch_accuracy": epoch_acc,
        "test_accuracy": epoch_acc[-1],
        "test_size": len(test_y),
        "train_seconds": train_s,
        "grad_check_max_diff": grad_check,
        "checkpoint_step": checkpoint_step,
        "batches_after_checkpoint": len(after_checkpoint),
        "batches_after_resume": len(seen),
        "resume_batches_identical": same_batches,
        "resume_weights_max_diff": weight_diff,
    }


class _Sample(dict):  # type: ignore[type-arg]
    """A test example shaped like a webdataset sample, so the test set goes through the same ``decode``."""

    def __init__(self, index: int, image: torch.Tensor, label: torch.Tensor) -> None:
        import io

        super().__init__(
            {
                "__key__": f"test/{index:06d}",
                ".pix": io.BytesIO(bytes(image.flatten().tolist())),
                ".cls": io.BytesIO(str(int(label)).encode()),
            }
        )


def main(argv: list[str]) -> int:
    cfg = json.loads(Path(argv[0]).read_text())
    if cfg["device"] == "cuda":
        torch.cuda.set_device(int(os.environ["RANK"]))
        # full float32 and deterministic kernels: the gradient check compares two computations of one
        # gradient, and the resume check expects the uninterrupted run's weights
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.set_num_threads(1)  # ranks and loader workers share the cores
    # On GPUs the gradients go over NCCL; the loader's rank sync (fullsync) reduces CPU tensors, which
    # NCCL cannot carry, so CPU collectives of the same group go over Gloo.
    backend = "cpu:gloo,cuda:nccl" if cfg["device"] == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=cfg["collective_timeout"]))
    try:
        result = train(cfg)
    finally:
        dist.destroy_process_group()
    path = Path(cfg["out"]) / f"rank-{result['rank']}.json"
    path.write_text(json.dumps(result))
    return 0


# NOTE [Gloo can abort interpreter shutdown]
# On torch 2.13 a Gloo worker thread can still be releasing its last reference to a tensor of a finished
# collective while Python shuts down. Releasing it needs the GIL; the shutting-down interpreter stops the
# thread inside a C++ destructor, and the process aborts ("terminate called without an active exception",
# exit code -6). Seen here in a fifth to a third of 2-process CPU runs, with torch's DDP as with Loom's, and
# with no DDP at all (plain training plus dist.all_reduce). A rank therefore leaves through os._exit once
# its results are written.
if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
