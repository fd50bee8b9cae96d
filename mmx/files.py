"""Files written so that a kill at any instant leaves the old file or the new one, and read back so that a damaged
one is named in one sentence: every file mmx writes goes through here (runs, tables, figures, caches).

Each is written to a temporary file of this writer's own beside its path, fsynced and renamed; a full disk or a
read-only folder becomes a :class:`mmx.errors.WriteFailed` naming the file. Checkpoints are loaded as plain
tensors only (``weights_only=True``).
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import secrets
from pathlib import Path
from typing import Callable

from mmx.errors import UserError, WriteFailed


def write_atomic(path: Path, write: Callable) -> None:
    """``write(binary file)`` into a temporary file of this writer's own beside ``path``, then rename it.

    The temporary name is unique per process and call, so concurrent writers never share one; on
    any failure it is removed, and a full disk is named as such. The file and then its folder are synced, so after
    a machine crash each path holds its old or its new file, and files written one after another (best.pt before
    last.pt) reach the disk in that order.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _sync_folder(path.parent)  # the rename itself reaches the disk now, in the order the files were written
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise write_error(error, path) from None
        raise


def _sync_folder(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_error(error: OSError, path: Path, appending: bool = False) -> WriteFailed:
    """One sentence for a failed write. ``appending``: a log of epochs (metrics.csv, TensorBoard's events), where a
    resume drops whatever came after its checkpoint; every other file is replaced atomically."""
    left = (
        "what earlier epochs wrote to it is kept, and a resume drops anything past its checkpoint"
        if appending
        else "nothing half-written was left, and any earlier copy of it is intact"
    )
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return WriteFailed(
            f"the disk is full: {path.name} could not be written in {path.parent} ({left})", "free some space", path
        )
    return WriteFailed(
        f"{path.name} could not be written in {path.parent} ({error.strerror or error}; {left})",
        "make the folder writable",
        path,
    )


def write_text(path: Path, text: str) -> None:
    """A text file (a table, a CSV, JSON, YAML), written atomically like every other file mmx writes."""
    write_atomic(path, lambda f: f.write(text.encode()))


def save_figure(figure, path: Path, **options) -> None:
    """A matplotlib figure as an image file (its format from the suffix), written atomically."""
    write_atomic(path, lambda f: figure.savefig(f, format=path.suffix.lstrip("."), **options))


def write_json(path: Path, data: dict) -> None:
    """Strict JSON (NaN and infinities become null, which every JSON reader accepts), written atomically."""
    write_text(path, json.dumps(_strict(data), indent=2, allow_nan=False) + "\n")


def _strict(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(
            f"{path} is damaged ({first_line(error)}); delete it to let mmx write it again, or restore it from a copy"
        ) from None


def save_checkpoint(state: dict, path: Path) -> None:
    """torch.save through :func:`write_atomic`: a resume after a kill at any instant finds a whole file.

    The state is serialised in memory first and then written: torch's own file writer reports a full disk as
    "unexpected pos" (a RuntimeError), where a plain write says what went wrong (an OSError and its errno).
    """
    import torch  # here, not at the top: `mmx --help` should not wait for torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, lambda f: f.write(buffer.getbuffer()))


def load_checkpoint(path: Path) -> dict:
    """Tensors, numbers, strings and containers only (``weights_only=True``), onto the CPU.

    A file that is not such a checkpoint (damaged, or crafted to run code when unpickled) is refused
    in one sentence; mmx never retries with ``weights_only=False``.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise UserError(
            f"{path} is damaged or not a checkpoint mmx wrote ({first_line(error)[:120]}); it was not "
            f"loaded (mmx loads only tensors and plain data)"
        ) from None


def first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def check_writable(folder: Path, option: str) -> Path:
    """Fail before any work when results could not be written to ``folder`` (created if missing)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".mmx-write-check.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"{option} {folder} cannot be written ({error.strerror or error}); choose a folder you can write to"
        ) from None
    return folder
