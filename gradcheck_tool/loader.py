"""Import a user's model file and find the model, its inputs and its loss (DESIGN.md "Finding the model").

The file is executed under a private module name, so ``if __name__ == "__main__":``
blocks never run.  While it imports and while the model is built, every
``nn.Module`` records the line of the user's file that constructed it: runtime
findings point there (``self.fc2 = nn.Linear(...)``), where the fix belongs.
"""
from __future__ import annotations

import contextlib
import inspect
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from gradcheck_tool import inputs as probe_inputs
from gradcheck_tool import project
from gradcheck_tool.errors import GradhealthError, first_line, out_of_memory
from gradcheck_tool.findings import Position, Span
from gradcheck_tool.probe.unregistered import plain_held


@dataclass(frozen=True)
class LoadOptions:
    model_expr: Optional[str] = None
    input_shape: Optional[tuple[int, ...]] = None
    input_dtype: Optional[str] = None
    device: str = "cpu"


@dataclass(frozen=True)
class ModelSpec:
    model: nn.Module
    name: str
    make_inputs: Callable[[], Any]
    inputs_description: str
    loss_fn: Optional[Callable[[Any, Any], torch.Tensor]]
    sites: dict[str, Span] = field(default_factory=dict)  # module name -> where it was built


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GradhealthError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise GradhealthError(f"unknown --device {name!r}; use cpu, cuda or auto") from None


@contextlib.contextmanager
def _recording_sites(path: Path) -> Iterator[dict[int, tuple[nn.Module, Span]]]:
    """Patch nn.Module.__init__ to remember, per instance, the user-file line that built it.

    Each entry holds its module: a temporary freed during import would otherwise hand its
    id(), and so its line, to the next module allocated at the same address.
    """
    target = str(path)
    sites: dict[int, tuple[nn.Module, Span]] = {}
    original = nn.Module.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        frame = sys._getframe(1)
        while frame is not None and (frame.f_code.co_filename != target or frame.f_locals.get("self") is self):
            frame = frame.f_back
        if frame is not None and id(self) not in sites:
            pos = inspect.getframeinfo(frame, context=0).positions
            if pos is not None and pos.lineno is not None:
                start = Position(pos.lineno, (pos.col_offset or 0) + 1)
                end = Position(pos.end_lineno or pos.lineno, (pos.end_col_offset or 0) + 1)
            else:
                start = end = Position(frame.f_lineno, 1)
            sites[id(self)] = (self, Span(target, start, end))

    nn.Module.__init__ = init
    try:
        yield sites
    finally:
        nn.Module.__init__ = original


def _import(path: Path, place: project.Placement) -> ModuleType:
    try:
        return project.import_placed(path, place)
    except SyntaxError as err:
        # compile() reports undecodable bytes as a SyntaxError, not a UnicodeDecodeError.
        if str(err.msg).startswith("(unicode error)"):
            reason = str(err.msg).removeprefix("(unicode error)").strip()
            raise GradhealthError(f"{path} is not valid UTF-8 ({reason}); save it as UTF-8") from err
        where = err.filename if err.filename and err.filename != str(path) else path  # maybe a sibling import
        raise GradhealthError(f"{where}:{err.lineno}: syntax error: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise GradhealthError(f"{path} is not valid UTF-8 ({err.reason}); save it as UTF-8") from err
    except project.ArgparseExit as err:
        raise GradhealthError(f"{path} parses its command line at import, and argparse refused an empty one "
                              f"({err.args[-1]}); give those arguments defaults, or move parse_args() under "
                              "if __name__ == '__main__':") from err
    except SystemExit as err:
        raise GradhealthError(f"{path} called sys.exit({_shown(err.code)}) at import; guard it with "
                              "if __name__ == '__main__':") from err
    except ImportError as err:
        raise GradhealthError(f"{path}: {first_line(err, type(err).__name__)} at import: install it in the environment "
                              "that runs gradhealth") from err
    except RecursionError as err:
        raise GradhealthError(_too_deep(f"{path} at import", err)) from err
    except (Exception, KeyboardInterrupt) as err:  # a KeyboardInterrupt here is the file's own raise
        remedy = _memory_hint(err) or ("; fix it, or scan with --static-only to check the source without "
                                       "running it")
        raise GradhealthError(f"{path} raised {type(err).__name__} at import: "
                              f"{first_line(err, type(err).__name__)}{remedy}") from err


def _shown(value: Any) -> str:
    """A user value for a message: repr for objects, plain for ints and None (sys.exit codes)."""
    try:
        return str(value) if isinstance(value, (int, type(None))) else repr(value)
    except BaseException:  # noqa: BLE001 - a user object whose __repr__ raises
        return f"<{type(value).__name__}>"


def _too_deep(what: str, err: RecursionError) -> str:
    return (f"{what}: the model is nested too deeply for Python's recursion limit ({first_line(err)}); "
            "probe a shallower configuration with --model or build_model()")


def _call_user(what: str, fn: Callable, *args) -> Any:
    try:
        return fn(*args)
    except GradhealthError:
        raise
    except project.ArgparseExit as err:
        raise GradhealthError(f"{what}: argparse refused an empty command line ({err.args[-1]}); give those "
                              "arguments defaults, or define build_model() without parse_args()") from err
    except SystemExit as err:
        raise GradhealthError(f"{what} called sys.exit({_shown(err.code)}); define build_model() that returns "
                              "the model without exiting") from err
    except RecursionError as err:
        raise GradhealthError(_too_deep(what, err)) from err
    except (Exception, KeyboardInterrupt) as err:  # a KeyboardInterrupt here is the file's own raise
        raise GradhealthError(f"{what} raised {type(err).__name__}: {first_line(err, type(err).__name__)}"
                              f"{_memory_hint(err)}") from err


def _memory_hint(err: BaseException) -> str:
    return "; the probe ran out of memory: raise --max-memory, or build a smaller model" if out_of_memory(err) else ""


def _no_arg_constructible(cls: type) -> bool:
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return all(
        p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in signature.parameters.values()
    )


def _roots(candidates: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Candidates that are not a submodule of another candidate."""
    inside = {id(sub) for _, m in candidates for sub in list(m.modules())[1:]}
    return [(n, m) for n, m in candidates if id(m) not in inside]


def _prefer_trainable(candidates: list[tuple[str, nn.Module]]) -> list[tuple[str, nn.Module]]:
    """Candidates with parameters, if any: a loss or activation module (criterion = nn.CrossEntropyLoss())
    sits beside the model in many scripts, and is not it."""
    return [(n, m) for n, m in candidates if any(True for _ in m.parameters())] or candidates


def _find_model(module: ModuleType, path: Path, options: LoadOptions) -> Optional[tuple[str, nn.Module]]:
    namespace = vars(module)
    if options.model_expr:
        try:
            # noqa: S307 - the user asked us to run it; names the file lacks come from its package
            model = eval(options.model_expr, namespace, project.ProjectNames(module))
        except RecursionError as err:
            raise GradhealthError(_too_deep(f"--model {options.model_expr!r}", err)) from err
        except (Exception, KeyboardInterrupt, SystemExit) as err:
            raise GradhealthError(f"--model {options.model_expr!r} raised {type(err).__name__}: "
                                  f"{first_line(err, type(err).__name__)}") from err
        if not isinstance(model, nn.Module):
            raise GradhealthError(f"--model {options.model_expr!r} gave {type(model).__name__!r}, not an nn.Module")
        return options.model_expr, model
    if callable(namespace.get("build_model")):
        model = _call_user(f"build_model() in {path.name}", namespace["build_model"])
        if not isinstance(model, nn.Module):
            raise GradhealthError(f"build_model() in {path.name} returned {type(model).__name__!r}, not an nn.Module")
        return "build_model()", model
    instances = _prefer_trainable(_roots([(n, v) for n, v in namespace.items()
                                          if isinstance(v, nn.Module) and not n.startswith("_")]))
    classes = [v for v in namespace.values()
               if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__]
    if classes and not any(True for _, m in instances for _ in m.parameters()):
        instances = []  # only a criterion (nn.CrossEntropyLoss()) at module level: the model is a class
    if len(instances) == 1 or "model" in dict(instances):
        name = "model" if "model" in dict(instances) else instances[0][0]
        return name, namespace[name]
    if len(instances) > 1:
        raise GradhealthError(f"several models in {path.name} ({', '.join(n for n, _ in instances)}): "
                              "pass --model NAME or define build_model()")
    if not classes:
        return None
    buildable = [c for c in classes if _no_arg_constructible(c)]
    if not buildable:
        names = ", ".join(c.__name__ for c in classes)
        verb = "needs" if len(classes) == 1 else "need"
        raise GradhealthError(f"{names} in {path.name} {verb} constructor arguments: define build_model() "
                              f"or pass --model \"{classes[0].__name__}(...)\"")
    built = [(c.__name__, _call_user(f"{c.__name__}() in {path.name}", c)) for c in buildable]
    # A class that another candidate uses as a submodule is a building block, not the model.
    used = {type(sub) for _, m in built for sub in list(m.modules())[1:]}
    roots = _prefer_trainable([(n, m) for n, m in built if type(m) not in used])
    if len(roots) != 1:
        raise GradhealthError(f"several candidate models in {path.name} ({', '.join(n for n, _ in roots)}): "
                              "pass --model NAME() or define build_model()")
    return f"{roots[0][0]}()", roots[0][1]


def _site_map(model: nn.Module, sites: dict[int, tuple[nn.Module, Span]], module: ModuleType,
              path: Path) -> dict[str, Span]:
    out = {name: sites[id(m)][1] for name, m in model.named_modules() if id(m) in sites}
    for _, _, _, items in plain_held(model):  # layers in a plain list or dict (GH113), by "layers[0]"
        out.update((path, sites[id(obj)][1]) for path, obj in items if isinstance(obj, nn.Module) and id(obj) in sites)
    if "" not in out:
        try:
            lines, start = inspect.getsourcelines(type(model))
            if Path(inspect.getsourcefile(type(model)) or "") == path:
                out[""] = Span(str(path), Position(start, 1), Position(start, len(lines[0].rstrip()) + 1))
        except (OSError, TypeError):
            pass
    return out


def load(path: Path, options: LoadOptions = LoadOptions()) -> Optional[ModelSpec]:
    """The file's model, inputs and loss, or None when the file defines no model at all."""
    path = path.resolve()
    if not path.is_file():
        raise GradhealthError(f"{path}: no such file")
    place = project.placement(path)
    with project.as_script(path, place):
        return _load(path, place, options)


def _load(path: Path, place: project.Placement, options: LoadOptions) -> Optional[ModelSpec]:
    device = resolve_device(options.device)
    with _recording_sites(path) as sites:
        module = _import(path, place)
        found = _find_model(module, path, options)
    if found is None:
        return None
    name, model = found
    try:
        meta = any(t.is_meta for t in (*model.parameters(), *model.buffers()))
    except RecursionError as err:
        raise GradhealthError(_too_deep(f"{name} in {path.name}", err)) from err
    if meta:
        raise GradhealthError(f"{name} in {path.name} has tensors on the meta device (shapes, no values): build it "
                              "with real weights, without init_empty_weights() or device='meta'")
    try:
        model.to(device)
    except Exception as err:
        raise GradhealthError(f"cannot move {name} to {device}: {first_line(err, type(err).__name__)}") from err
    namespace = vars(module)
    if callable(namespace.get("example_inputs")):
        user = namespace["example_inputs"]
        first = probe_inputs.as_call(model, _call_user(f"example_inputs() in {path.name}", user),
                                     f"example_inputs() in {path.name}")
        make = lambda: probe_inputs.to_device(probe_inputs.as_call(model, user()), device)  # noqa: E731
        description = f"example_inputs(): {probe_inputs.describe(first)}"
    elif options.input_shape:
        probe_inputs.check_forward(model, path.name)
        dtype = probe_inputs.parse_dtype(options.input_dtype or "float32")
        make = probe_inputs.from_shape(model, options.input_shape, dtype, device)
        description = f"--input-shape: {probe_inputs.describe(make())}"
    else:
        make, description = probe_inputs.infer(model, device, path.name)
    loss_fn = namespace.get("loss_fn") if callable(namespace.get("loss_fn")) else None
    return ModelSpec(model=model, name=type(model).__name__, make_inputs=make, inputs_description=description, loss_fn=loss_fn,
                     sites=_site_map(model, sites, module, path))
