"""Train a localconn model, on one process or with DDP under ``torchrun``.

Multi-GPU and multi-node training is PyTorch's job: this script is plain
``DistributedDataParallel``. Launched by ``torchrun`` (``RANK`` /
``WORLD_SIZE`` in the environment) it joins the process group (NCCL on
GPUs, gloo on the CPU); otherwise it runs alone. ``--batch-size`` is per
process, so the global batch is ``batch_size * world_size``.

    python examples/train.py --model dwnet_tiny --steps 20 --batch-size 16
    torchrun --nproc_per_node 8 examples/train.py --model dynamic_dwnet_tiny \\
        --batch-size 128 --bf16 --channels-last --sync-bn --data /data/imagenet/train
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 examples/train.py --model dwnet_base ...

Data: synthetic by default (a seeded global batch per step, each rank
taking its slice, so any world size sees the same images); ``--data DIR``
reads a torchvision ``ImageFolder`` (needs torchvision) with a
``DistributedSampler``.

BatchNorm under DDP normalises with each rank's own batch. ``--sync-bn``
converts it to ``SyncBatchNorm`` (GPU only in PyTorch), which uses the
statistics of the global batch; ``--freeze-bn`` keeps BatchNorm in eval mode
(running statistics, affine parameters still trained), which makes a DDP
run compute exactly what one process computes on the combined batch (the
CPU test ``tests/test_ddp.py`` does that).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

try:
    import localconn.models
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import localconn.models

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world_size``, and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command-line arguments (``--help`` lists them)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="dwnet_tiny", help=f"one of {localconn.models.names()}")
    p.add_argument("--model-kwargs", type=json.loads, default={},
                   help='JSON of extra create() arguments, e.g. \'{"depths": [1, 1, 1, 1]}\'')
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64, help="per process")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--opt", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--channels-last", action="store_true", help="channels_last model and input")
    p.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP (GPU)")
    p.add_argument("--freeze-bn", action="store_true", help="BatchNorm in eval mode")
    p.add_argument("--data", default=None, help="ImageFolder root (default: synthetic data)")
    p.add_argument("--workers", type=int, default=4, help="data loader workers (--data)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=300, help="process-group timeout, seconds")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--save", default=None,
                   help="save the final state_dict here; '{rank}' is replaced by the rank")
    return p.parse_args(argv)


def init_distributed(device: Optional[str] = None, timeout_s: float = 300) -> Dist:
    """Join the ``torchrun`` process group if launched by it (NCCL on CUDA, gloo on the CPU).

    Example::

        >>> init_distributed("cpu")      # not under torchrun: a single process
        Dist(rank=0, world_size=1, device=device(type='cpu'))
    """
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(kind, local_rank) if kind == "cuda" else torch.device(kind)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if dev.type == "cuda" else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=dev if dev.type == "cuda" else None,
        )
    return Dist(rank, world, dev)


def build_model(args: argparse.Namespace, where: Dist) -> nn.Module:
    """``localconn.models.create`` on ``where.device`` (seeded, so every rank starts equal),
    optionally with SyncBatchNorm and channels_last, wrapped in DDP when distributed.

    Example::

        >>> args = parse_args(["--img-size", "32", "--model-kwargs", '{"depths": [1, 1, 1, 1]}'])
        >>> build_model(args, Dist(0, 1, torch.device("cpu")))
        LocalNet(...)
    """
    torch.manual_seed(args.seed)
    model = localconn.models.create(
        args.model, img_size=args.img_size, num_classes=args.num_classes, **args.model_kwargs
    )
    if args.sync_bn and where.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(where.device, memory_format=memory_format)
    if where.distributed:
        ids = [where.device.index] if where.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model


def set_train_mode(model: nn.Module, freeze_bn: bool) -> None:
    """``model.train()``, with every BatchNorm back in eval mode if ``freeze_bn``.

    Example::

        >>> m = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3))
        >>> set_train_mode(m, freeze_bn=True)
        >>> m[0].training, m[1].training
        (True, False)
    """
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def synthetic_batches(
    batch_size: int, img_size: int, num_classes: int, where: Dist, seed: int = 0
) -> Iterator[Batch]:
    """Endless seeded batches: step ``s`` draws the global batch of ``batch_size *
    world_size`` images from seed ``(seed, s)`` and this rank takes its slice.

    Example::

        >>> x, y = next(synthetic_batches(2, 32, 10, Dist(0, 1, torch.device("cpu"))))
        >>> x.shape, y.shape
        (torch.Size([2, 3, 32, 32]), torch.Size([2]))
    """
    step = 0
    total = batch_size * where.world_size
    lo, hi = where.rank * batch_size, (where.rank + 1) * batch_size
    while True:
        gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
        x = torch.randn(total, 3, img_size, img_size, generator=gen)[lo:hi]
        y = torch.randint(0, num_classes, (total,), generator=gen)[lo:hi]
        yield x, y
        step += 1


def image_folder_batches(
    root: str, batch_size: int, img_size: int, where: Dist, workers: int = 4, seed: int = 0
) -> Iterator[Batch]:
    """Endless batches of a torchvision ``ImageFolder`` (random resized crop and flip),
    sharded across ranks by a ``DistributedSampler``.

    Example::

        >>> next(image_folder_batches("/data/train", 64, 224, where))  # doctest: +SKIP
    """
    try:
        from torchvision import datasets, transforms
    except Exception as e:  # torchvision missing or built for another PyTorch
        raise SystemExit(
            f"--data needs torchvision ({type(e).__name__}: {e}); install the torchvision "
            "that matches your PyTorch, or leave out --data for synthetic data"
        ) from e
    tf = transforms.Compose([
        transforms.RandomResizedCrop(img_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    data = datasets.ImageFolder(root, tf)
    sampler = torch.utils.data.DistributedSampler(
        data, num_replicas=where.world_size, rank=where.rank, shuffle=True, seed=seed
    )
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch_size, sampler=sampler, num_workers=workers,
        pin_memory=where.device.type == "cuda", drop_last=True, persistent_workers=workers > 0,
    )
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW (weight decay 0.05, the paper's optimiser).

    Example::

        >>> make_optimizer(nn.Linear(2, 2), "sgd", 0.1).defaults["momentum"]
        0.9
    """
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    device: torch.device,
    bf16: bool = False,
    channels_last: bool = False,
) -> float:
    """One step: forward (bf16 autocast if asked), cross-entropy, backward, update; the loss.

    Under DDP the gradients are averaged across ranks during ``backward``.

    Example::

        >>> m = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> batch = (torch.randn(2, 3, 2, 2), torch.tensor([0, 2]))
        >>> train_step(m, make_optimizer(m, "sgd", 0.1), batch, torch.device("cpu")) > 0
        True
    """
    x, y = batch
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    x = x.to(device, non_blocking=True).contiguous(memory_format=memory_format)
    y = y.to(device, non_blocking=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def main(argv: Optional[list[str]] = None) -> list[float]:
    """Run the training; return this rank's losses."""
    args = parse_args(argv)
    where = init_distributed(args.device, args.timeout)
    try:
        model = build_model(args, where)
        optimizer = make_optimizer(model, args.opt, args.lr)
        if args.data:
            batches = image_folder_batches(
                args.data, args.batch_size, args.img_size, where, args.workers, args.seed
            )
        else:
            batches = synthetic_batches(
                args.batch_size, args.img_size, args.num_classes, where, args.seed
            )
        set_train_mode(model, args.freeze_bn)
        losses: list[float] = []
        t0 = time.perf_counter()
        for step in range(args.steps):
            losses.append(
                train_step(model, optimizer, next(batches), where.device, args.bf16,
                           args.channels_last)
            )
            if where.rank == 0 and args.log_every and (step + 1) % args.log_every == 0:
                rate = (step + 1) * args.batch_size * where.world_size / (time.perf_counter() - t0)
                print(f"step {step + 1}/{args.steps}  loss {losses[-1]:.4f}  {rate:.1f} img/s",
                      flush=True)
        if args.save:
            path = args.save.replace("{rank}", str(where.rank))
            torch.save(unwrap(model).state_dict(), path)
        return losses
    finally:
        if where.distributed and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
