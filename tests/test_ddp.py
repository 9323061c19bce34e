"""DDP with localconn models: examples/train.py under torchrun, two CPU processes (gloo).

Two ranks each train on half of every global batch; a single process trains
on the whole batch. After a few SGD steps the ranks must hold bitwise
identical parameters (DDP averaged their gradients) that equal the single
process's up to float32 rounding.

BatchNorm would break the equality: under DDP it normalises with per-rank
batch statistics, and SyncBatchNorm (which would use the global batch) runs
on GPUs only. The runs therefore use ``--freeze-bn`` (BatchNorm in eval mode,
on running statistics, its affine parameters still trained): each sample's
loss then depends on that sample alone, and DDP's average of the per-rank
mean losses' gradients is the gradient of the mean loss over the global
batch. Stochastic depth is off (it draws random numbers per rank).

The launch uses ``torchrun --standalone`` (a free port is chosen for the
rendezvous), a subprocess timeout and a process-group timeout, so a failing
rank ends the test instead of hanging it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from tolerances import assert_close

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "examples" / "train.py"
MODEL_KWARGS = {"embed_dim": 8, "depths": [1, 1, 1, 1], "drop_path_rate": 0.0}
PER_RANK_BATCH, STEPS, WORLD = 2, 3, 2


def _args(batch: int, save: str) -> list[str]:
    return [
        "--model", "dynamic_dwnet_tiny", "--model-kwargs", json.dumps(MODEL_KWARGS),
        "--img-size", "32", "--num-classes", "10", "--batch-size", str(batch),
        "--steps", str(STEPS), "--lr", "0.1", "--freeze-bn", "--device", "cpu",
        "--log-every", "0", "--timeout", "60", "--save", save,
    ]


def _load_train_module():
    """examples/train.py as a module (registered, as its dataclass needs)."""
    name = "localconn_example_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TRAIN)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"
)
def test_ddp_two_cpu_ranks_match_one_process(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={WORLD}", str(TRAIN),
           *_args(PER_RANK_BATCH, str(tmp_path / "rank{rank}.pt"))]
    try:
        run = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=180)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"torchrun did not finish in {e.timeout} s:\n{e.stdout}\n{e.stderr}")
    assert run.returncode == 0, f"torchrun failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"

    with torch.random.fork_rng():  # the example seeds the global generator
        losses = _load_train_module().main(
            _args(PER_RANK_BATCH * WORLD, str(tmp_path / "single.pt"))
        )
    assert len(losses) == STEPS

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    single = torch.load(tmp_path / "single.pt")
    assert ranks[0].keys() == single.keys()
    moved = 0
    initial = _initial_state()
    for name, value in single.items():
        for r in range(1, WORLD):
            assert torch.equal(ranks[r][name], ranks[0][name]), f"rank {r} differs: {name}"
        if value.is_floating_point():
            assert_close(ranks[0][name], value, what=name, scale=10)
            moved += not torch.equal(value, initial[name])
    assert moved > len(single) // 2  # the steps did train (most tensors changed)


def _initial_state() -> dict[str, torch.Tensor]:
    """The model as every run starts it (same seed as examples/train.py)."""
    train = _load_train_module()
    args = train.parse_args(_args(1, "unused"))
    with torch.random.fork_rng():
        model = train.build_model(args, train.Dist(0, 1, torch.device("cpu")))
    return model.state_dict()


def test_image_folder_without_torchvision_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--data`` needs torchvision; without a working one the example exits with a clear reason."""
    train = _load_train_module()
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `from torchvision import` fails
    where = train.Dist(0, 1, torch.device("cpu"))
    with pytest.raises(SystemExit, match="--data needs torchvision"):
        next(train.image_folder_batches("/nonexistent", 2, 32, where))


def test_synthetic_batches_are_sharded_slices_of_one_global_batch() -> None:
    train = _load_train_module()
    cpu = torch.device("cpu")
    (x, y), = [next(train.synthetic_batches(4, 8, 10, train.Dist(0, 1, cpu), seed=3))]
    for rank in range(2):
        xr, yr = next(train.synthetic_batches(2, 8, 10, train.Dist(rank, 2, cpu), seed=3))
        assert torch.equal(xr, x[2 * rank : 2 * rank + 2])
        assert torch.equal(yr, y[2 * rank : 2 * rank + 2])
