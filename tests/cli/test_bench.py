"""mmx bench at tiny sizes on the CPU: both paths run, the table and the JSON are well formed."""

import json

import pytest

from helpers import assert_one_sentence_error, run_mmx

pytestmark = pytest.mark.slow  # trains or builds through the command line


def test_bench_times_both_paths_and_writes_json(tmp_path):
    result = run_mmx(
        [
            "bench",
            "--regimes",
            "none,manifold",
            "--batch-sizes",
            "8,16",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "2",
            "--out",
            "bench.json",
            "model.width=8",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "bench.json").read_text())
    assert report["device"].startswith("cpu") and report["peak_tflops"] > 0
    results = report["results"]
    assert {(r["regime"], r["batch_size"], r["path"]) for r in results} == {
        (regime, batch, path) for regime in ("none", "manifold") for batch in (8, 16) for path in ("reference", "fast")
    }
    for r in results:
        assert r["images_per_second"] > 0 and len(r["repeats"]) == 2 and r["fraction_of_peak"] > 0
        assert r["fraction_of_peak"] == r["images_per_second"] * r["train_gflop_per_image"] / (
            report["peak_tflops"] * 1e3
        )
        assert r["precision"] == "fp32"  # on a CPU both paths train in fp32
        assert r["train_gflop_per_image"] > 0
    rows = [line.split() for line in result.stdout.splitlines() if " fast " in line or " reference " in line]
    assert len(rows) == 8
    assert all(row[-1].endswith("x") for row in rows if row[3] == "fast" and row[1] == "none")  # fast/reference
    assert all(
        row[-2].endswith("x") and row[-1].endswith("%") for row in rows if row[3] == "fast" and row[1] == "manifold"
    )
    assert all(row[-1].endswith("%") for row in rows if row[3] == "reference" and row[1] == "manifold")  # mix cost
    assert "measured matmul peak" in result.stdout


def test_bench_compiles_every_configuration_afresh_one_graph_per_point(tmp_path):
    """Two compiled configurations in one process, of two batch sizes: each compiles its own graph of static
    shapes (without a reset the second would count two graphs, and dynamo would make its shapes dynamic),
    and a warm-up longer than the timed steps is run in full."""
    result = run_mmx(
        [
            "bench",
            "--regimes",
            "none",
            "--batch-sizes",
            "8,16",
            "--paths",
            "compiled",
            "--steps",
            "1",
            "--warmup",
            "3",
            "--repeats",
            "1",
            "model.width=8",
        ],
        tmp_path,
        timeout=900,  # inductor compiles C++ for each configuration: minutes on a cold cache and one thread
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "bench.json").read_text())["results"]
    assert [r["batch_size"] for r in results] == [8, 16]
    for r in results:
        assert r["images_per_second"] > 0 and r["warmup_steps"] == 3
        assert r["programs"] == 1 and r["compiled_graphs"] == 1, r
    assert all(row.split()[-1] == "1/1" for row in result.stdout.splitlines() if " compiled " in row)


def test_bench_unknown_or_impossible_paths(tmp_path):
    assert_one_sentence_error(run_mmx(["bench", "--paths", "fast,turbo"], tmp_path), "unknown path(s) turbo")
    assert_one_sentence_error(run_mmx(["bench", "--steps", "0"], tmp_path), "--steps must be at least 1")
    assert_one_sentence_error(
        run_mmx(["bench", "--paths", "graphs", "--steps", "1", "model.width=8"], tmp_path),
        "trainer.cuda_graphs=true needs a CUDA device",
    )


FAMILY = ["cutmix", "manifold_cutmix", "nfm", "regmixup"]


def test_bench_times_the_mixing_family_on_every_cpu_path_and_regmixup_against_input_mixup(tmp_path):
    """Each method of the family on the reference path (the public code's step, mixing as the method does), mmx's
    eager step and its compiled step (aot_eager: dynamo and AOTAutograd without inductor's C++), one graph per program;
    regmixup's step does twice input mixup's work, and the table says what it costs beside input mixup."""
    result = run_mmx(
        [
            "bench",
            "--regimes",
            ",".join(["input", *FAMILY]),
            "--batch-sizes",
            "8",
            "--paths",
            "reference,fast,compiled",
            "--steps",
            "2",
            "--warmup",
            "4",
            "--repeats",
            "1",
            "--image-size",
            "16",
            "model.width=8",
            "trainer.compile_backend=aot_eager",
        ],
        tmp_path,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    results = {(r["regime"], r["path"]): r for r in json.loads((tmp_path / "bench.json").read_text())["results"]}
    assert set(results) == {
        (regime, path) for regime in ["input", *FAMILY] for path in ("reference", "fast", "compiled")
    }
    for (regime, path), r in results.items():
        assert r["images_per_second"] > 0
        if path == "compiled":
            assert r["programs"] >= 1 and r["compiled_graphs"] == r["programs"], r  # no graph breaks, no fallback
    assert results["regmixup", "fast"]["train_gflop_per_image"] == 2 * results["input", "fast"]["train_gflop_per_image"]
    assert results["cutmix", "fast"]["train_gflop_per_image"] == results["input", "fast"]["train_gflop_per_image"]
    rows = {(row.split()[1], row.split()[3]): row.split() for row in result.stdout.splitlines() if " fast " in row}
    # no regime "none" here: the last column is the cost over input mixup, after the fast/reference ratio
    assert rows["regmixup", "fast"][-1].endswith("%") and rows["regmixup", "fast"][-2].endswith("x")
    assert rows["input", "fast"][-1].endswith("x")
