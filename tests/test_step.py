"""The training step's compiled and graph-ready forms train as the eager one does."""
import csv
import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY, run_mmx
from mmx.config import validate
from mmx.errors import UserError
from mmx.step import capturable_sgd

DETERMINISTIC = [*TINY, "mixup=input", "epochs=2", "schedule.milestones=[]", "trainer.deterministic=true"]


def losses(run) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(row["train_loss"]) for row in csv.DictReader(f)]


def test_compiled_step_follows_the_eager_loss_curve(tmp_path):
    """torch.compile (inductor, generating C++ on the CPU) against eager on the same seed."""
    eager = run_mmx(["train", *DETERMINISTIC, "hydra.run.dir=eager"], tmp_path)
    compiled = run_mmx(["train", *DETERMINISTIC, "trainer.compile=true", "hydra.run.dir=compiled"], tmp_path)
    assert eager.returncode == 0 and compiled.returncode == 0, eager.stderr + compiled.stderr
    a, b = losses(tmp_path / "eager"), losses(tmp_path / "compiled")
    assert a[0] == pytest.approx(b[0], rel=1e-4)  # same first epoch up to kernel rounding
    assert a[1] == pytest.approx(b[1], rel=2e-2) and b[1] < b[0]
    summary = json.loads((tmp_path / "compiled" / "summary.json").read_text())
    assert summary["compile"] is True and summary["cuda_graphs"] is False and summary["final"]["acc"] > 20


def sgd_pair(milestone: int):
    """Two identical models, one with the foreach SGD and one made capturable, each with a MultiStepLR."""
    torch.manual_seed(0)
    models = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
                  for m in models]
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


def graph_config(**trainer):
    return OmegaConf.create({
        "mixup": {"name": "none"}, "epochs": 1, "schedule": {}, "batch_size": 10, "loss": "soft_ce",
        "optim": {"_target_": "torch.optim.SGD"},
        "trainer": {"sync_bn": False, "precision": "bf16", "compile": False, "compile_mode": "default",
                    "cuda_graphs": True, **trainer}})


@pytest.mark.parametrize("change, kwargs, fragment", [
    ({"precision": "fp16"}, {}, "cannot replay fp16's loss scaling"),
    ({}, {"world_size": 2}, "runs in one process"),
    ({"compile": True, "compile_mode": "max-autotune"}, {}, "cannot nest"),
])
def test_cuda_graph_settings_that_cannot_replay_are_rejected(change, kwargs, fragment):
    with pytest.raises(UserError, match=fragment):
        validate(graph_config(**change), mix_points=4, train_size=100, device_type="cuda", **kwargs)
    cfg = graph_config()
    cfg.optim._target_ = "torch.optim.Adam"
    with pytest.raises(UserError, match="torch.optim.SGD updates only"):
        validate(cfg, mix_points=4, train_size=100, device_type="cuda")
    validate(graph_config(), mix_points=4, train_size=100, device_type="cuda")  # the supported setting passes


def test_a_run_whose_sgd_reads_its_lr_from_a_tensor_logs_and_schedules_it(tmp_path, monkeypatch):
    """What trainer.cuda_graphs does to the optimiser, applied to a CPU run: the schedule and the logs still work."""
    from hydra import compose, initialize_config_module

    import mmx.train as train_module

    plain_build_step = train_module.build_step

    def build_step_with_tensor_lr(s, cfg):
        capturable_sgd(s.optimizer, s.device)
        return plain_build_step(s, cfg)

    monkeypatch.setattr(train_module, "build_step", build_step_with_tensor_lr)
    with initialize_config_module("mmx.configs", version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "epochs=3", "schedule.milestones=[2]"])
    (tmp_path / "run").mkdir()
    summary = train_module.train(cfg, tmp_path / "run")
    assert summary["finished"]
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert [float(row["lr"]) for row in csv.DictReader(f)] == pytest.approx([0.05, 0.05, 0.005])
