"""results/theory's figure is drawn again from its committed measurements (the runs' checkpoints are not kept), and
only while those measurements still give the committed table."""

import shutil
import subprocess
import sys

from helpers import REPO

SCRIPT = REPO / "scripts" / "theory_study.py"


def replot(folder):
    return subprocess.run([sys.executable, SCRIPT, "--replot", folder], capture_output=True, text=True, timeout=120)


def test_the_committed_theory_figure_is_redrawn_from_its_measurements(tmp_path):
    out = tmp_path / "theory"
    shutil.copytree(REPO / "results" / "theory", out, ignore=shutil.ignore_patterns("runs", "check"))
    (out / "theory.png").unlink()
    result = replot(out)
    assert result.returncode == 0, result.stderr
    assert (out / "theory.png").stat().st_size > 50_000

    rows = (out / "theory_runs.csv").read_text().splitlines()
    (out / "theory_runs.csv").write_text("\n".join(rows[:-1]) + "\n")  # one seed's measurement gone
    (out / "theory.png").unlink()
    refused = replot(out)
    assert refused.returncode != 0 and "no longer gives its theory.csv" in refused.stderr
    assert "Traceback" not in refused.stderr and not (out / "theory.png").exists()


def test_tick_labels_keep_d_minus_1_and_skip_crowded_neighbours():
    sys.path.insert(0, str(SCRIPT.parent))
    from theory_study import spaced_labels

    assert spaced_labels([2, 3, 4, 6, 8, 9, 10, 11, 12, 16, 32], first=[9]) == [
        "2", "3", "4", "6", "", "9", "", "", "12", "16", "32",
    ]  # fmt: skip
    assert spaced_labels([1, 2, 3, 4, 5, 6, 8], first=[2, 4]) == ["1", "2", "3", "4", "5", "", "8"]
