"""A regular (non-editable) install runs ``mmx train`` from any directory: the configs ship inside."""

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.slow  # trains or builds through the command line


def test_wheel_install_into_a_fresh_venv_trains_from_another_directory(tmp_path):
    source = tmp_path / "source"  # the tracked files only: a stale build/ in the checkout must not leak in
    tracked = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in tracked:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    wheel = next(wheels.glob("mmx-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name.removeprefix("mmx/configs/") for name in archive.namelist() if name.endswith(".yaml")}
    assert shipped == {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")}

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    fresh_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The heavy dependencies (torch, ...) come from this environment's site-packages through a .pth
    # line, which adds the folder without running its own .pth files: this checkout's editable
    # install stays invisible, so `import mmx` can only find the wheel.
    (Path(fresh_site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run(
        [python, "-c", "import mmx; print(mmx.__file__)"], cwd=elsewhere, check=True, capture_output=True, text=True
    ).stdout
    assert where.startswith(fresh_site), where
    result = subprocess.run(
        [
            venv / "bin" / "mmx",
            "train",
            "model.width=8",
            "trainer.progress=false",
            "epochs=1",
            "schedule.milestones=[]",
            "hydra.run.dir=run",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((elsewhere / "run" / "summary.json").read_text())["finished"]
