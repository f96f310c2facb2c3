"""gradhealth: a linter for the trainability of PyTorch models.

``gradcheck_tool.scan(model, inputs, loss_fn=None)`` probes an in-memory model and
returns a Report.  Importing the package does not import torch (the static-only
pre-commit hook relies on that); ``scan`` loads the probe on first use.
"""
__version__ = "0.1.0"

__all__ = ["scan", "__version__"]


def __getattr__(name):
    if name == "scan":
        from gradcheck_tool.api import scan

        return scan
    raise AttributeError(f"module 'gradcheck_tool' has no attribute {name!r}")
