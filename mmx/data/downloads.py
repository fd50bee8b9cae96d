"""What a failed download leaves behind: nothing. torchvision creates the data folders before it fetches; when the
fetch fails (no network, missing files and ``dataset.download=false``), the folders it created are removed again."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def folders_removed_on_failure(folder: Path) -> Iterator[None]:
    """Run the block; if it raises, remove ``folder`` and those of its parents that did not exist before it ran,
    as long as they are empty (files the block wrote, such as a partial download, are the user's to see)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    try:
        yield
    except BaseException:
        for path in missing:  # deepest first
            with contextlib.suppress(OSError):
                path.rmdir()  # only empty folders: never a file
        raise
