"""mmx: manifold mixup experiments. From Python: :func:`load_run` and :func:`create_model`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mmx")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name: str):
    """The Python API, imported on first use so that ``import mmx`` (and the CLI's start) stays light."""
    if name in ("load_run", "create_model", "LoadedRun"):
        from mmx import api

        return getattr(api, name)
    raise AttributeError(f"module 'mmx' has no attribute {name!r}")


__all__ = ["LoadedRun", "create_model", "load_run", "__version__"]
