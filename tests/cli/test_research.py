"""A researcher's day with mmx: short sweep names, schedules that follow epochs, HParams in TensorBoard,
the Python API, shell completion, help, progress bars, pasteable commands, and the README's sweep as written."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from helpers import MMX, REPO, TINY, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line


def test_sweep_directories_are_named_by_the_swept_keys_only(tmp_path):
    result = run_mmx(["train", "-m", *TINY, "epochs=1", "mixup=none,input", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert names == ["0_mixup=none", "1_mixup=input"]  # not model.width=8,trainer.progress=false,...
    config = (tmp_path / "sweep" / "1_mixup=input" / "config.yaml").read_text()
    assert "width: 8" in config and "epochs: 1" in config  # every override is still in the run's config
    resumed = run_mmx(["train", "resume=sweep/1_mixup=input"], tmp_path)
    assert resumed.returncode == 0 and "already finished" in resumed.stdout + resumed.stderr


def test_schedules_follow_epochs_so_short_runs_and_sweeps_over_epochs_just_work(tmp_path):
    result = run_mmx(["train", "-m", *TINY, "epochs=3,6", "hydra.sweep.dir=sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    for run, milestones in (("0_epochs=3", [2]), ("1_epochs=6", [3, 5])):  # digits: x0.1 at 1/2 and 5/6 of the run
        summary = json.loads((tmp_path / "sweep" / run / "summary.json").read_text())
        assert summary["finished"]
        assert f"milestones:\n  - {milestones[0]}" in (tmp_path / "sweep" / run / "config.yaml").read_text()
        lrs = [float(line.split(",")[1]) for line in (tmp_path / "sweep" / run / "metrics.csv").read_text().split()[1:]]
        assert lrs.count(0.05) == milestones[0]  # the first drop comes at the first milestone


def test_every_run_registers_its_hyper_parameters_in_tensorboard(digits_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(digits_run / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert hparams["dataset.name"] == "digits" and hparams["mixup.name"] == "manifold"
    assert hparams["mixup.points"] == "0,1,2" and hparams["epochs"] == 3 and hparams["seed"] == 0
    assert hparams["model.width"] == 8  # differs from the default 64
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"test/error", "test/nll", "best/error", "best/nll"} <= tags
    assert [e.step for e in events.Scalars("best/error")] == [1, 2, 3]


def test_the_python_api_gives_a_run_back_without_its_data(digits_run, tmp_path):
    script = f"""
import json, sys, torch
import mmx
from mmx.data.digits import load_digits
run = mmx.load_run({str(digits_run)!r})
assert "mmx.data.digits" not in sys.modules or True
test = load_digits()
predicted = run.classify(test.test_images)
accuracy = float((predicted == test.test_labels).float().mean() * 100)
best = json.load(open({str(digits_run / "summary.json")!r}))["best"]["acc"]
fresh = mmx.create_model("preactresnet18", num_classes=10, in_channels=1, image_size=8, width=8)
print(json.dumps({{"accuracy": accuracy, "best": best, "epoch": run.epoch, "classes": run.num_classes,
                  "same_shape": [p.shape for p in fresh.parameters()] == [p.shape for p in run.network.parameters()]}}))
"""
    loading = (
        "import sys, mmx; mmx.load_run(sys.argv[1]); print(sorted(m for m in sys.modules if m.startswith('mmx.data')))"
    )
    modules = subprocess.run(
        [sys.executable, "-c", loading, str(digits_run)], capture_output=True, text=True, cwd=tmp_path, check=True
    ).stdout
    assert "mmx.data.digits" not in modules  # no dataset was loaded to rebuild the network
    out = json.loads(
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    )
    assert out["accuracy"] == pytest.approx(out["best"]) and out["classes"] == 10 and out["same_shape"]
    summary = json.loads((digits_run / "summary.json").read_text())
    assert summary["model_args"]["num_classes"] == 10 and summary["model_args"]["image_size"] == 8
    assert summary["code"]["mmx"] and "commit" in summary["code"]


def test_tab_completion_of_a_group_option_and_a_key(tmp_path):
    script = (
        f'export PATH={shlex.quote(os.path.dirname(MMX))}:$PATH; eval "$(mmx train --shell-completion install=bash)"\n'
        'for line in "mmx train dataset=ci" "mmx train mixup.al" "mmx tr"; do\n'
        '  COMP_LINE="$line"; COMP_POINT=${#line}; COMP_WORDS=($line); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
        '  hydra_bash_completion; echo "${COMPREPLY[*]}"\n'
        "done\n"
    )
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["dataset=cifar10", "dataset=cifar100"], result.stdout + result.stderr
    assert lines[1].split() == ["mixup.alpha="] and lines[2].split() == ["train"]
    assert "unknown command" not in result.stdout + result.stderr


def test_version_and_every_help_shows_defaults(tmp_path):
    version = run_mmx(["--version"], tmp_path)
    assert version.returncode == 0 and re.fullmatch(r"mmx \d+\.\d+\.\d+\S*\n", version.stdout)
    for command, default in (
        ("bench", "(default: 40)"),
        ("spiral", "(default: 3000)"),
        ("tables", "(default: results)"),
        ("reproduce", "(default: 30.0)"),
        ("spectrum", "(default: 1)"),
    ):
        shown = run_mmx([command, "--help"], tmp_path)
        assert shown.returncode == 0 and default in shown.stdout, (command, shown.stdout)


def test_a_redirected_log_holds_no_progress_bars(tmp_path):
    result = run_mmx(["train", "model.width=8", "epochs=1", "hydra.run.dir=run"], tmp_path)  # progress: auto
    assert result.returncode == 0, result.stderr
    assert "\r" not in result.stdout + result.stderr and "\x1b[" not in result.stdout + result.stderr


def test_reproduce_dry_run_prints_a_command_a_shell_can_take(tmp_path):
    printed = run_mmx(["reproduce", "table6", "seeds=2", "--dry-run"], tmp_path).stdout.splitlines()[-1]
    words = subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {printed.removeprefix('mmx train ')}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "hydra.sweep.dir=runs/reproduce/table6/${now:%Y-%m-%d_%H-%M-%S}" in words  # not expanded away


def test_the_readme_sweep_runs_as_written(tmp_path):
    """The commands of README's "Your own sweep", at tiny width and one epoch, in order."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own sweep", 1)[1].split("\n## ", 1)[0]
    commands = [
        line for line in section.split("```bash", 1)[1].split("```", 1)[0].splitlines() if line.startswith("mmx ")
    ]
    assert len(commands) == 4
    for command in commands:
        args = shlex.split(command)[1:]
        if args[0] == "train":
            args += [*TINY, "epochs=1"]
        result = run_mmx(args, tmp_path, timeout=900)
        assert result.returncode == 0, (command, result.stderr)
    assert len(list((tmp_path / "runs" / "my_sweep").glob("*/summary.json"))) == 18
    table = (tmp_path / "runs" / "my_sweep" / "tables" / "runs.md").read_text()
    assert table.count("| digits | preactresnet18 |") == 6 and "| alpha |" in table
    assert (tmp_path / "runs" / "my_sweep" / "figures" / "runs_digits_preactresnet18_alpha.png").exists()
