"""The training step's compiled and graph-ready forms train as the eager one does."""

import csv
import json

import pytest
import torch

from mmx.errors import UserError
from mmx.step import capturable_sgd, check_graph_settings

from helpers import TINY, run_mmx

DETERMINISTIC = [*TINY, "mixup=input", "epochs=2", "schedule.milestones=[]", "trainer.deterministic=true"]


def losses(run) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_compiled_step_follows_the_eager_loss_curve(tmp_path):
    """torch.compile (inductor, generating C++ on the CPU) against eager on the same seed."""
    eager = run_mmx(["train", *DETERMINISTIC, "hydra.run.dir=eager"], tmp_path)
    compiled = run_mmx(["train", *DETERMINISTIC, "trainer.compile=true", "hydra.run.dir=compiled"], tmp_path)
    assert eager.returncode == 0 and compiled.returncode == 0, eager.stderr + compiled.stderr
    a, b = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    # Same first epoch up to kernel rounding, which 14 steps amplify: about 1e-4 with two threads, 1e-3 with
    # one (inductor's C++ reduces in another order); a wrong step (lr, mixing, loss) is off by far more.
    assert a[0] == pytest.approx(b[0], rel=3e-3)
    assert a[1] == pytest.approx(b[1], rel=2e-2) and b[1] < b[0]
    summary = json.loads((tmp_path / "compiled" / "summary.json").read_text())
    assert summary["compile"] is True and summary["cuda_graphs"] is False and summary["final"]["acc"] > 20


def sgd_pair(milestone: int):
    """Two identical models, one with the foreach SGD and one made capturable, each with a MultiStepLR."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [
        torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4) for m in models
    ]
    capturable_sgd(optimizers[1], torch.device("cpu"))
    schedulers = [torch.optim.lr_scheduler.MultiStepLR(o, [milestone], 0.1) for o in optimizers]
    return models, optimizers, schedulers


def test_capturable_sgd_updates_as_the_foreach_sgd_and_follows_the_schedule():
    models, optimizers, schedulers = sgd_pair(milestone=2)
    lr = optimizers[1].param_groups[0]["lr"]
    x, y = torch.randn(16, 5), torch.randint(3, (16,))
    for epoch in range(4):
        for model, optimizer, scheduler in zip(models, optimizers, schedulers):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            scheduler.step()
        for a, b in zip(models[0].parameters(), models[1].parameters()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    # the very tensor a captured graph reads was updated in place by the scheduler
    assert optimizers[1].param_groups[0]["lr"] is lr and float(lr) == pytest.approx(0.01)
    assert optimizers[1].param_groups[0]["fused"]


def graph_step(optimizer=None, precision="bf16", compile_mode=None, device="cuda", ddp=False, tensor_lr=True):
    """A TrainStep asked to replay CUDA graphs, with one setting changed; the check runs before any CUDA call."""
    model = torch.nn.Linear(3, 2)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1)
    if tensor_lr and isinstance(optimizer, torch.optim.SGD):
        capturable_sgd(optimizer, torch.device("cpu"))
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel.__new__(torch.nn.parallel.DistributedDataParallel)
    return check_graph_settings(model, optimizer, torch.device(device), precision, compile_mode)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"precision": "fp16"}, "cannot replay fp16's loss scaling"),
        ({"ddp": True}, "runs in one process"),
        ({"compile_mode": "max-autotune"}, "cannot nest"),
        ({"tensor_lr": False}, "drop trainer.fused_sgd=false"),
        ({"device": "cpu"}, "needs a CUDA device"),
    ],
)
def test_cuda_graph_settings_that_cannot_replay_are_rejected(kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        graph_step(**kwargs)
    with pytest.raises(UserError, match="torch.optim.SGD updates only"):
        graph_step(optimizer=torch.optim.Adam(torch.nn.Linear(3, 2).parameters()))
    graph_step()  # the supported setting passes


def test_fused_sgd_needs_sgd():
    with pytest.raises(UserError, match="fuses torch.optim.SGD only"):
        capturable_sgd(torch.optim.Adam(torch.nn.Linear(3, 2).parameters()), torch.device("cpu"))


@pytest.mark.slow
def test_a_run_with_the_fused_tensor_lr_sgd_logs_and_schedules_its_lr(tmp_path):
    """What trainer.cuda_graphs does to the optimiser (trainer.fused_sgd), on a CPU run: same schedule, logs work."""
    fused = run_mmx(
        [
            "train",
            *TINY,
            "epochs=3",
            "schedule.milestones=[2]",
            "trainer.fused_sgd=true",
            "trainer.deterministic=true",
            "hydra.run.dir=fused",
        ],
        tmp_path,
    )
    plain = run_mmx(
        ["train", *TINY, "epochs=3", "schedule.milestones=[2]", "trainer.deterministic=true", "hydra.run.dir=plain"],
        tmp_path,
    )
    assert fused.returncode == 0 and plain.returncode == 0, fused.stderr + plain.stderr
    with open(tmp_path / "fused" / "metrics.csv") as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)] == pytest.approx([0.05, 0.05, 0.005])
    # fused and foreach SGD round differently; 3 epochs amplify that to about 1e-4 (a wrong update: 1e-2)
    assert losses(tmp_path / "fused") == pytest.approx(losses(tmp_path / "plain"), rel=1e-3)
