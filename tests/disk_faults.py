"""``python disk_faults.py ARGS...``: the ``mmx`` command, with every write to some files failing as a full disk does.

``MMX_FAULT_FILES`` is a glob matched against each written file's path (temporary files beside it included);
``MMX_FAULT_ERRNO`` the error (default ENOSPC); ``MMX_FAULT_AFTER`` a file that must exist before writes fail
(default none: from the first). Every ``open`` for writing goes through here, so mmx's files, TensorBoard's
event file (tensorboard's gfile opens it per flush) and Hydra's are all covered; the test decides which.
"""

import builtins
import errno
import fnmatch
import io
import os
import sys

PATTERN = os.environ["MMX_FAULT_FILES"]
ERROR = getattr(errno, os.environ.get("MMX_FAULT_ERRNO", "ENOSPC"))
AFTER = os.environ.get("MMX_FAULT_AFTER")
real_open = io.open


class FailingFile:
    """An open file whose writes fail with ``ERROR``, as the kernel reports a full disk: at ``write``."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        raise OSError(ERROR, os.strerror(ERROR), self._handle.name)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()


def faulty_open(file, mode="r", *args, **kwargs):
    handle = real_open(file, mode, *args, **kwargs)
    writing = any(flag in mode for flag in "wax+")
    armed = AFTER is None or os.path.exists(AFTER)
    named = isinstance(file, (str, bytes, os.PathLike))  # not a file descriptor
    if writing and armed and named and fnmatch.fnmatch(os.fsdecode(file), PATTERN):
        return FailingFile(handle)
    return handle


builtins.open = io.open = faulty_open

from mmx.cli import main  # noqa: E402 - after the patch, so every module sees it

sys.exit(main(sys.argv[1:]))
