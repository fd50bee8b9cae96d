"""A hostile user and a crashing machine: runs started together, a resume of a live run, Ctrl-C,
divergence mid-epoch and in evaluation. Each leaves nothing lost and says what happened in one sentence."""

import json
import os
import signal
import subprocess
import time

import pytest

from helpers import MMX, TESTS, TINY, assert_one_sentence_error, run_mmx

pytestmark = pytest.mark.slow  # trains through the command line

QUICK = [*TINY, "epochs=2"]


def take_ctrl_c_as_a_terminal_would():
    """Undo what a background job or a CI harness may hand down: SIGINT ignored (Python then never installs its
    handler) or blocked (the signal stays pending and the run finishes as if never interrupted)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def start(args, cwd, **env):
    """``mmx ARGS`` in a subprocess that takes Ctrl-C as a terminal would deliver it, however the suite was started."""
    return subprocess.Popen(
        [MMX, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "MMX_DATA": str(cwd / "data"), **env},
        preexec_fn=take_ctrl_c_as_a_terminal_would,
    )


def strict_json(path):
    def refuse(name):
        raise ValueError(f"{name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_runs_and_sweeps_started_together_each_get_a_directory_of_their_own(tmp_path):
    runs = [start(["train", *QUICK, f"seed={seed}"], tmp_path) for seed in range(3)]
    sweeps = [start(["train", "-m", *QUICK, "mixup=none,input"], tmp_path) for _ in range(2)]
    for process in runs + sweeps:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    singles = sorted(p for p in (tmp_path / "runs").glob("*/*") if p.parent.name != "multirun")
    assert len(singles) == 3  # same second: suffixes, never a shared folder
    assert sorted(strict_json(p / "summary.json")["seed"] for p in singles) == [0, 1, 2]
    for run in singles:
        summary = strict_json(run / "summary.json")
        assert summary["finished"] and f"seed: {summary['seed']}" in (run / "config.yaml").read_text()
        assert (run / "metrics.csv").read_text().count("\n") == 3  # header + one row per epoch, no interleaving
    jobs = sorted((tmp_path / "runs" / "multirun").glob("*/*/*/summary.json"))
    assert len(jobs) == 4 and len({p.parent.parent for p in jobs}) == 2  # two sweeps, two jobs each
    assert all(strict_json(p)["finished"] for p in jobs)
    assert not list(tmp_path.rglob("*.tmp"))


def test_two_runs_sent_to_one_named_directory_one_trains_and_one_is_refused(tmp_path):
    processes = [start(["train", *QUICK, f"seed={seed}", "hydra.run.dir=shared"], tmp_path) for seed in (0, 1)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2], results
    refusal = next(err for code, err in results if code == 2)
    assert "in use by process" in refusal or "already holds a run" in refusal
    summary = strict_json(tmp_path / "shared" / "summary.json")
    assert summary["finished"] and (tmp_path / "shared" / "metrics.csv").read_text().count("\n") == 3


def test_a_live_run_cannot_be_resumed_and_ctrl_c_names_the_last_checkpoint(tmp_path):
    """The live run is frozen (SIGSTOP) once its first checkpoint exists, so it is still training, whatever the
    machine's speed, when the resume is refused and when Ctrl-C reaches it."""
    live = start(["train", *TINY, "epochs=3", "hydra.run.dir=run"], tmp_path)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline:
        time.sleep(0.05)
    live.send_signal(signal.SIGSTOP)
    resumed = run_mmx(["train", "resume=run"], tmp_path)
    assert_one_sentence_error(resumed, f"is in use by process {live.pid}")
    live.send_signal(signal.SIGINT)  # pending until it runs again
    live.send_signal(signal.SIGCONT)
    _, err = live.communicate(timeout=120)
    assert live.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"mmx: interrupted; the last checkpoint is {last}; continue with `mmx train resume={tmp_path / 'run'}`"
    ]
    interrupted = strict_json(tmp_path / "run" / "summary.json")  # written for last.pt, whenever Ctrl-C landed
    done = interrupted["epochs_done"]
    assert done >= 1 and interrupted["stopped"].startswith("interrupted") and not interrupted["finished"]
    assert run_mmx(["train", "resume=run"], tmp_path, timeout=600).returncode == 0  # the lock went
    assert strict_json(tmp_path / "run" / "summary.json")["epochs_done"] == 3 > done


def test_a_diverging_run_stops_within_a_few_steps_and_says_so_in_its_summary(tmp_path):
    """lr 1e6: the loss is NaN by step 3; checked every 4 steps, the run stops in its first 4 steps, not after an
    epoch of 200, and leaves a strict-JSON summary with the reason."""
    args = [
        "train",
        *TINY,
        "optim.lr=1e6",
        "dataset=synthetic",
        "dataset.source.train_size=20000",
        "trainer.finite_check_every=4",
        "hydra.run.dir=run",
    ]
    result = run_mmx(args, tmp_path)
    assert_one_sentence_error(result, "the training loss became nan at epoch 1, step", "no checkpoint was written")
    step = int(result.stderr.split("step ")[1].split(";")[0])
    assert step <= 4
    summary = strict_json(tmp_path / "run" / "summary.json")
    assert summary["finished"] is False and summary["stopped"].startswith("the training loss became nan")


def test_a_diverging_job_of_a_sweep_is_recorded_and_the_sweep_goes_on(tmp_path):
    """An lr sweep where one learning rate diverges: the other jobs still train, the sweep ends with one sentence
    naming the diverged job and a non-zero exit, and the tables say "diverged", not "unfinished"."""
    sweep = ["train", "-m", *TINY, "epochs=1", "optim.lr=1e6,0.1,0.05", "hydra.sweep.dir=lr"]
    result = run_mmx(sweep, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "mmx: error: 1 of the 3 jobs in lr diverged (0_optim.lr=1000000.0); the others ran, and "
        "each diverged run's summary.json says where it stopped"
    )
    summaries = {p.parent.name: strict_json(p) for p in (tmp_path / "lr").glob("*/summary.json")}
    assert sorted(summaries) == ["0_optim.lr=1000000.0", "1_optim.lr=0.1", "2_optim.lr=0.05"]
    assert summaries["0_optim.lr=1000000.0"]["stopped"].startswith("the training loss became nan")
    assert summaries["1_optim.lr=0.1"]["finished"] and summaries["2_optim.lr=0.05"]["finished"]

    brief = run_mmx(["tables", "lr", "--brief"], tmp_path)
    rows = brief.stdout.split("\n\n")[0].splitlines()[2:]  # the table, above its footnote
    ended = {line.split()[-1]: line.split()[-2] for line in rows}
    assert ended == {"0_optim.lr=1000000.0": "diverged", "1_optim.lr=0.1": "finished", "2_optim.lr=0.05": "finished"}
    assert run_mmx(["tables", "lr", "--out", "tables"], tmp_path).returncode == 0
    assert "| 1 diverged (epochs done: 0 of 1) |" in (tmp_path / "tables" / "runs.md").read_text()


def test_a_killed_sweep_continues_with_resume_to_the_results_of_an_uninterrupted_one(tmp_path):
    """SIGKILL once the second job has a checkpoint: the first job diverged, the second is mid-run, the third never
    started. ``resume=SWEEP`` leaves the first as it was, resumes the second, trains the third, and ends where the
    uninterrupted sweep ends; a second continuation has nothing left to do."""
    lrs = ["trainer.deterministic=true", "epochs=2", "optim.lr=1e6,0.1,0.05"]
    assert run_mmx(["train", "-m", *TINY, *lrs, "hydra.sweep.dir=full"], tmp_path).returncode == 2
    sweep = start(["train", "-m", *TINY, *lrs, "hydra.sweep.dir=cut"], tmp_path)
    second = tmp_path / "cut" / "1_optim.lr=0.1"
    deadline = time.time() + 120
    while not (second / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.02)
    sweep.kill()
    sweep.communicate()
    assert not (second / "summary.json").exists() or not strict_json(second / "summary.json")["finished"]

    first_invocation = (second / ".hydra" / "hydra.yaml").stat().st_mtime_ns
    refused = run_mmx(["train", "resume=cut", "epochs=3"], tmp_path)
    assert_one_sentence_error(refused, "continues a sweep with the settings it was started with; drop epochs=3")
    continued = run_mmx(["train", "resume=cut"], tmp_path)
    assert continued.returncode == 2 and "Traceback" not in continued.stderr, continued.stderr
    assert "it had diverged" in continued.stderr and f"resuming {second} from epoch 1" in continued.stdout
    assert "1 of the 3 jobs in cut diverged (0_optim.lr=1000000.0)" in continued.stderr.splitlines()[-1]
    for job in ("1_optim.lr=0.1", "2_optim.lr=0.05"):
        full, cut = (strict_json(tmp_path / sweep / job / "summary.json") for sweep in ("full", "cut"))
        assert cut["finished"] and cut["final"] == full["final"] and cut["best"] == full["best"], job
        assert (tmp_path / "cut" / job / "metrics.csv").read_text().count("\n") == 3  # header and 2 epochs
    assert (second / ".hydra" / "hydra.yaml").stat().st_mtime_ns == first_invocation  # kept, as a resume keeps it
    assert (tmp_path / "cut" / "2_optim.lr=0.05" / ".hydra" / "overrides.yaml").is_file()  # a job started now has one
    again = run_mmx(["train", "resume=cut"], tmp_path)
    assert again.returncode == 2 and again.stdout.count("has already finished its 2 epochs; nothing to do") == 2


def test_ctrl_c_in_a_sweep_names_the_sweep_to_continue_and_the_continuation_finishes_it(tmp_path):
    sweep = start(["train", "-m", *TINY, "epochs=2", "seed=0,1", "hydra.sweep.dir=seeds"], tmp_path)
    first = tmp_path / "seeds" / "0_seed=0"
    deadline = time.time() + 120
    while not (first / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGSTOP)
    sweep.send_signal(signal.SIGINT)
    sweep.send_signal(signal.SIGCONT)
    _, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        f"mmx: interrupted; the last checkpoint is {first / 'checkpoints' / 'last.pt'}; continue the sweep with "
        f"`mmx train resume={tmp_path / 'seeds'}`"
    )
    assert strict_json(first / "summary.json")["stopped"].startswith("interrupted")
    continued = run_mmx(["train", f"resume={tmp_path / 'seeds'}"], tmp_path)
    assert continued.returncode == 0, continued.stderr
    summaries = [strict_json(p) for p in sorted((tmp_path / "seeds").glob("*/summary.json"))]
    assert [(s["seed"], s["finished"], s["stopped"]) for s in summaries] == [(0, True, None), (1, True, None)]


def test_non_finite_test_metrics_are_divergence_and_keep_the_last_good_checkpoint_true(tmp_path):
    result = run_mmx(
        ["train", *QUICK, "hydra.run.dir=run", "model._target_=crash_models.InfiniteInEvalPreActResNet"],
        tmp_path,
        env={"PYTHONPATH": str(TESTS)},
    )
    assert_one_sentence_error(result, "became non-finite at epoch 1", "no checkpoint was written before it")
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    summary = strict_json(tmp_path / "run" / "summary.json")
    assert summary["finished"] is False and "non-finite" in summary["stopped"] and summary["epochs_done"] == 0


def test_an_unwritable_output_is_refused_before_the_work(tmp_path):
    (tmp_path / "a_file").write_text("")
    started = time.time()
    result = run_mmx(["spiral", "--out", str(tmp_path / "a_file" / "spiral.png")], tmp_path)
    assert_one_sentence_error(result, "--out", "a_file cannot be written")
    assert time.time() - started < 60  # the spiral trains for minutes before it writes
