"""The loader, called directly on small model files written to tmp_path.

Covers DESIGN.md "Finding the model": which model wins, where inputs and the loss come
from, the one-line errors, the construction sites runtime findings point at, and that
loading leaves the interpreter (sys.path, nn.Module.__init__) as it found it.
"""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from gradcheck_tool import inputs as probe_inputs
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.loader import LoadOptions, load
from gradcheck_tool.probe.engine import run_probe

HEADER = "import torch\nimport torch.nn as nn\n"


def write(tmp_path: Path, source: str, name: str = "model.py", header: str = HEADER) -> Path:
    path = tmp_path / name
    path.write_text(header + textwrap.dedent(source), encoding="utf-8")
    return path


def load_error(path: Path, **options) -> str:
    """The message of the GradhealthError that loading raises; it must be one non-empty line."""
    with pytest.raises(GradhealthError) as info:
        load(path, LoadOptions(**options))
    message = str(info.value)
    assert message.strip() and "\n" not in message, repr(message)
    return message


def position(path: Path, marker: str, call: str) -> tuple[int, int]:
    """1-based (row, column) of ``call`` on the one line of ``path`` that contains ``marker``."""
    rows = [i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line]
    assert len(rows) == 1, (marker, rows)
    line = path.read_text().splitlines()[rows[0] - 1]
    return rows[0], line.index(call) + 1


# --- finding the model -------------------------------------------------------------------------

NET = """
class Net(nn.Module):
    def __init__(self, width=3):
        super().__init__()
        self.fc = nn.Linear(2, width)

    def forward(self, x):
        return self.fc(x)
"""
BUILD_MODEL = """
def build_model():
    return Net(width=5)
"""
MODULE_LEVEL = """
model = nn.Sequential(nn.Linear(2, 6))
"""


@pytest.mark.parametrize(
    ("parts", "expr", "kind", "width"),
    [
        pytest.param((NET, BUILD_MODEL, MODULE_LEVEL), "Net(width=4)", "Net", 4, id="model-expr"),
        pytest.param((NET, BUILD_MODEL, MODULE_LEVEL), None, "Net", 5, id="build_model"),
        pytest.param((NET, MODULE_LEVEL), None, "Sequential", 6, id="module-level-instance"),
        pytest.param((NET,), None, "Net", 3, id="single-class"),
    ],
)
def test_discovery_order(tmp_path, parts, expr, kind, width):
    spec = load(write(tmp_path, "".join(parts)), LoadOptions(model_expr=expr))
    assert spec is not None
    assert type(spec.model).__name__ == kind
    linear = next(m for m in spec.model.modules() if isinstance(m, nn.Linear))
    assert linear.out_features == width


@pytest.mark.parametrize("root_first", [True, False])
def test_several_classes_picks_the_one_not_used_as_a_submodule(tmp_path, root_first):
    root = """
class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.Sequential(Block(), Block())

    def forward(self, x):
        return self.blocks(x)
"""
    block = """
class Block(nn.Module):
    def __init__(self, width=4):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return self.fc(x).relu()
"""
    spec = load(write(tmp_path, root + block if root_first else block + root))
    assert type(spec.model).__name__ == "Tower"
    assert spec.name == "Tower"


def test_several_independent_classes_is_an_error_listing_them(tmp_path):
    path = write(tmp_path, """
class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
""")
    message = load_error(path)
    assert "Encoder" in message and "Decoder" in message
    assert "--model" in message


def test_class_needing_arguments_asks_for_build_model_or_model(tmp_path):
    path = write(tmp_path, """
class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)
""")
    message = load_error(path)
    assert "Net" in message and "build_model()" in message and "--model" in message


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("", id="empty-file"),
        pytest.param("\n\n# only a comment\n", id="comment-only"),
        pytest.param('"""Helpers."""\n\ndef accuracy(p, t):\n    return (p.argmax(-1) == t).float().mean()\n',
                     id="utility-module"),
    ],
)
def test_a_file_without_a_model_is_skipped_not_an_error(tmp_path, source):
    assert load(write(tmp_path, source, header="")) is None


def test_module_level_instances_pick_the_root(tmp_path):
    spec = load(write(tmp_path, """
encoder = nn.Linear(4, 8)
net = nn.Sequential(encoder, nn.ReLU(), nn.Linear(8, 2))
"""))
    assert isinstance(spec.model, nn.Sequential)
    assert spec.model[0] is not None and spec.model[2].out_features == 2


def test_independent_module_level_instances_is_an_error_listing_them(tmp_path):
    message = load_error(write(tmp_path, """
encoder = nn.Linear(4, 8)
decoder = nn.Linear(8, 4)
"""))
    assert "encoder" in message and "decoder" in message


def test_a_module_level_loss_is_not_a_second_model(tmp_path):
    # The shape of PyTorch's CIFAR-10 tutorial: net and criterion side by side at module level.
    spec = load(write(tmp_path, NET + "\nnet = Net()\ncriterion = nn.CrossEntropyLoss()\n"))
    assert type(spec.model).__name__ == "Net"


def test_a_loss_class_is_not_a_second_model(tmp_path):
    spec = load(write(tmp_path, NET + """
class SmoothL1(nn.Module):
    def forward(self, output, target):
        return nn.functional.smooth_l1_loss(output, target)
"""))
    assert type(spec.model).__name__ == "Net"


def test_main_block_never_runs(tmp_path):
    marker = tmp_path / "main-ran"
    path = write(tmp_path, NET + f"""
if __name__ == "__main__":
    open({str(marker)!r}, "w").close()
    raise SystemExit("the __main__ block ran")
""")
    spec = load(path)
    assert type(spec.model).__name__ == "Net"
    assert not marker.exists()


# --- inputs ------------------------------------------------------------------------------------

RECORDER = """
class Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.calls = []

    def forward(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        tensors = list(args) + [kwargs[k] for k in sorted(kwargs)]
        return self.fc(sum(tensors))
"""


@pytest.mark.parametrize(
    ("body", "n_args", "kwarg_names"),
    [
        pytest.param("return torch.randn(4, 3)", 1, [], id="tensor"),
        pytest.param("return torch.randn(4, 3), torch.randn(4, 3)", 2, [], id="tuple-as-args"),
        pytest.param('return {"a": torch.randn(4, 3), "b": torch.randn(4, 3)}', 0, ["a", "b"], id="dict-as-kwargs"),
    ],
)
def test_example_inputs_are_passed_as_args_or_kwargs(tmp_path, body, n_args, kwarg_names):
    spec = load(write(tmp_path, RECORDER + f"\ndef example_inputs():\n    {body}\n"))
    assert spec.inputs_description.startswith("example_inputs()")
    run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=1)
    args, kwargs = spec.model.calls[-1]
    assert len(args) == n_args and sorted(kwargs) == kwarg_names
    assert all(isinstance(t, torch.Tensor) and t.shape == (4, 3) for t in [*args, *kwargs.values()])


def test_input_shape_float(tmp_path):
    path = write(tmp_path, "model = nn.Sequential(nn.Linear(10, 2))\n")
    spec = load(path, LoadOptions(input_shape=(5, 10)))
    x = spec.make_inputs()
    assert x.shape == (5, 10) and x.dtype == torch.float32
    assert spec.model(x).shape == (5, 2)
    x64 = load(path, LoadOptions(input_shape=(5, 10), input_dtype="float64")).make_inputs()
    assert x64.dtype == torch.float64


def test_input_shape_int64_stays_inside_the_embedding_vocabulary(tmp_path):
    spec = load(write(tmp_path, "model = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 2))\n"),
                LoadOptions(input_shape=(64, 64), input_dtype="int64"))
    tokens = spec.make_inputs()
    assert tokens.shape == (64, 64) and tokens.dtype == torch.int64
    assert int(tokens.min()) >= 0 and int(tokens.max()) == 6  # 4096 draws: the whole vocabulary is used
    spec.model(tokens)


def test_example_inputs_beat_input_shape(tmp_path):
    spec = load(write(tmp_path, "model = nn.Linear(3, 2)\n\ndef example_inputs():\n    return torch.ones(2, 3)\n"),
                LoadOptions(input_shape=(9, 9)))
    assert spec.make_inputs().shape == (2, 3)


B, T = probe_inputs.BATCH, probe_inputs.SEQUENCE


@pytest.mark.parametrize(
    ("layer", "shape", "dtype"),
    [
        ("nn.Linear(5, 3)", (B, 5), torch.float32),
        ("nn.Conv1d(3, 4, 3)", (B, 3, 64), torch.float32),
        ("nn.Conv2d(3, 4, 3)", (B, 3, 32, 32), torch.float32),
        ("nn.Conv3d(2, 4, 3)", (B, 2, 8, 16, 16), torch.float32),
        ("nn.Embedding(11, 4)", (B, T), torch.int64),
        ("nn.RNN(6, 5, batch_first=True)", (B, T, 6), torch.float32),
        ("nn.LSTM(6, 5, batch_first=True)", (B, T, 6), torch.float32),
        ("nn.GRU(6, 5, batch_first=True)", (B, T, 6), torch.float32),
        ("nn.RNN(6, 5)", (T, B, 6), torch.float32),
        ("nn.LSTM(6, 5, batch_first=False)", (T, B, 6), torch.float32),
        ("nn.GRU(6, 5)", (T, B, 6), torch.float32),
    ],
)
def test_inputs_inferred_from_the_first_layer(tmp_path, layer, shape, dtype):
    spec = load(write(tmp_path, f"""
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = {layer}
        self.head = nn.Linear(17, 2)  # registered second: must not drive the inference

    def forward(self, x):
        out = self.first(x)
        return out[0] if isinstance(out, tuple) else out
"""))
    x = spec.make_inputs()
    assert tuple(x.shape) == shape and x.dtype == dtype
    assert "first" in spec.inputs_description
    if dtype == torch.int64:
        assert int(x.min()) >= 0 and int(x.max()) < 11
    spec.model(x)  # the inferred inputs fit the layer


def test_no_inferable_layer_asks_for_example_inputs_or_input_shape(tmp_path):
    message = load_error(write(tmp_path, """
class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(3))

    def forward(self, x):
        return x * self.w
"""))
    assert "example_inputs()" in message and "--input-shape" in message


def test_loss_fn_is_picked_up_when_defined(tmp_path):
    spec = load(write(tmp_path, NET + "\ndef loss_fn(output, inputs):\n    return output.sum() * 0 + 42.0\n"))
    assert spec.loss_fn is not None
    assert float(spec.loss_fn(torch.zeros(2), None)) == 42.0
    assert load(write(tmp_path, NET, name="no_loss.py")).loss_fn is None


# --- errors: one line, the cause and the remedy --------------------------------------------------

@pytest.mark.parametrize(
    ("source", "options", "fragments"),
    [
        pytest.param("x = 1\n\ndef f(:\n    pass\n", {}, [":3:", "syntax error"], id="syntax-error"),
        pytest.param("import gradhealth_no_such_package_xyz\n", {},
                     ["gradhealth_no_such_package_xyz", "install"], id="missing-package"),
        pytest.param("raise RuntimeError('dataset not found at /data')\n", {},
                     ["RuntimeError", "dataset not found at /data", "import"], id="raises-at-import"),
        pytest.param("import sys\nsys.exit()\n", {}, ["sys.exit", "__main__"], id="sys-exit-at-import"),
        pytest.param("import sys\nsys.exit(3)\n", {}, ["sys.exit(3)", "__main__"], id="sys-exit-code-at-import"),
        pytest.param(HEADER + NET, {"model_expr": "Net(width=undefined_name)"},
                     ["Net(width=undefined_name)", "NameError", "undefined_name"], id="model-expr-raises"),
        pytest.param(HEADER + NET, {"model_expr": "[1, 2]"}, ["[1, 2]", "list", "nn.Module"],
                     id="model-expr-not-a-module"),
        pytest.param(HEADER + NET + "\ndef build_model():\n    raise ValueError('bad width')\n", {},
                     ["build_model()", "ValueError", "bad width"], id="build-model-raises"),
        pytest.param("def build_model():\n    return 3\n", {}, ["build_model()", "int", "nn.Module"],
                     id="build-model-not-a-module"),
    ],
)
def test_errors_are_one_line_and_leave_the_interpreter_as_found(tmp_path, source, options, fragments):
    path_before, init_before = list(sys.path), nn.Module.__init__
    message = load_error(write(tmp_path, source, header=""), **options)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert sys.path == path_before
    assert nn.Module.__init__ is init_before


def test_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.py")
    assert "nope.py" in message and "no such file" in message


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes(b"import torch.nn as nn\nname = 'caf\xe9'\n")
    message = load_error(path)
    assert "UTF-8" in message and "latin.py" in message and "syntax error" not in message


def test_syntax_error_in_a_sibling_names_the_sibling(tmp_path):
    (tmp_path / "layers.py").write_text("x = 1\ny = (\n", encoding="utf-8")
    message = load_error(write(tmp_path, "import layers\n"))
    assert "layers.py" in message and "model.py" not in message


# --- sys.path and nn.Module.__init__ ----------------------------------------------------------------

def test_sibling_imports_work_also_inside_build_model(tmp_path, monkeypatch):
    (tmp_path / "blocks.py").write_text(HEADER + NET, encoding="utf-8")
    path = write(tmp_path, "def build_model():\n    from blocks import Net  # imported lazily, at build time\n"
                           "    return Net()\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the file's folder is not the working directory
    monkeypatch.delitem(sys.modules, "blocks", raising=False)
    before = list(sys.path)
    spec = load(path)
    assert type(spec.model).__name__ == "Net"
    assert sys.path == before
    sys.modules.pop("blocks", None)


def test_sys_path_and_module_init_are_restored(tmp_path):
    path = write(tmp_path, "import sys\nsys.path.append('/gradhealth/extra')\n" + NET)
    path_before, init_before = list(sys.path), nn.Module.__init__
    assert load(path) is not None
    assert sys.path == path_before
    assert nn.Module.__init__ is init_before
    nn.Linear(2, 2)  # and modules built afterwards still work


# --- construction sites ------------------------------------------------------------------------

def test_site_of_an_attribute_points_at_its_call(tmp_path):
    path = write(tmp_path, """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x))
""")
    spec = load(path)
    row, column = position(path, "self.fc2 =", "nn.Linear(")
    site = spec.sites["fc2"]
    assert (site.start.row, site.start.column) == (row, column)
    assert (site.end.row, site.end.column) == (row, column + len("nn.Linear(8, 2)"))
    assert Path(site.filename) == path.resolve()
    assert spec.sites["fc1"].start.row == row - 1


def test_sites_of_modules_built_in_a_list_comprehension(tmp_path):
    path = write(tmp_path, """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x
""")
    spec = load(path)
    row, column = position(path, "self.blocks =", "nn.Linear(")
    for name in ("blocks.0", "blocks.1", "blocks.2"):
        assert (spec.sites[name].start.row, spec.sites[name].start.column) == (row, column)


def test_a_freed_temporary_does_not_lend_its_site(tmp_path):
    path = write(tmp_path, """
def build_model():
    scratch = [nn.Linear(4, 4) for _ in range(64)]  # built and dropped: their ids are free again
    del scratch
    return nn.Sequential(*[nn.Linear(4, 4) for _ in range(8)])
""")
    spec = load(path)
    row, _ = position(path, "return nn.Sequential", "nn.Sequential(")
    assert {spec.sites[str(i)].start.row for i in range(8)} == {row}


def test_sites_inside_a_transformers_model_point_at_the_users_line(tmp_path):
    pytest.importorskip("transformers")
    path = write(tmp_path, """
from transformers import GPT2Config, GPT2LMHeadModel


def build_model():
    config = GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64)
    return GPT2LMHeadModel(config)
""")
    spec = load(path)
    row, column = position(path, "return GPT2LMHeadModel", "GPT2LMHeadModel(")
    names = [name for name, _ in spec.model.named_modules()]
    inner = [name for name in names if name.startswith("transformer.h.1")]
    assert inner, names
    for name in ["", "lm_head", "transformer", *inner]:
        assert (spec.sites[name].start.row, spec.sites[name].start.column) == (row, column), name
    assert int(spec.make_inputs().max()) < 100  # token ids inferred from the embedding


def test_failed_import_leaves_no_private_module(tmp_path):
    import sys as _sys

    bad = tmp_path / "boom.py"
    bad.write_text("import torch.nn as nn\nmodel = nn.Linear(2, 2)\nraise ValueError('at import')\n")
    before = {n for n in _sys.modules if n.startswith("_gradhealth_user_")}
    with pytest.raises(GradhealthError, match="ValueError at import"):
        load(bad)
    assert {n for n in _sys.modules if n.startswith("_gradhealth_user_")} == before


# --- issue 11: imports as the project does them ----------------------------------------------

def _package(tmp_path: Path, name: str = "proj_pkg") -> Path:
    package = tmp_path / name
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "layers.py").write_text(HEADER + "\nclass Block(nn.Module):\n    def __init__(self, width=4):\n"
                                       "        super().__init__()\n        self.fc = nn.Linear(width, width)\n\n"
                                       "    def forward(self, x):\n        return self.fc(x)\n")
    write(package, "from .layers import Block\n\nmodel = nn.Sequential(Block(), nn.Linear(4, 2))\n")
    return package / "model.py"


def test_a_package_member_imports_with_its_package(tmp_path):
    spec = load(_package(tmp_path))
    assert type(spec.model[0]).__module__ == "proj_pkg.layers"
    assert spec.sites["1"].start.row == 5  # nn.Linear(4, 2), in model.py (line 5 after the header)


def test_model_expressions_reach_the_package(tmp_path):
    path = _package(tmp_path, "expr_pkg")
    assert load(path, LoadOptions(model_expr="Block(3)")).model.fc.in_features == 3  # an imported name
    assert load(path, LoadOptions(model_expr="layers.Block(5)")).model.fc.in_features == 5  # a sibling module
    assert "NameError" in load_error(path, model_expr="Nothing()")


def test_placement_puts_the_project_after_the_standard_library(tmp_path):
    from gradcheck_tool import project

    place = project.placement(_package(tmp_path, "placed_pkg").resolve())
    assert place.module_name == "placed_pkg.model" and place.package == "placed_pkg"
    assert place.paths[0] == str(tmp_path.resolve())
    stdlib = str(Path(textwrap.__file__).parent)
    path = project.after_stdlib(["", stdlib, "/site-packages"], place.paths)
    assert path.index(stdlib) < path.index(place.paths[0]) < path.index("/site-packages")
    assert project.stdlib_first(["", "/somewhere", stdlib]) == [stdlib, "/somewhere"]


def test_the_fix_engines_hidden_copy_imports_under_the_originals_name(tmp_path):
    from gradcheck_tool import project

    copy = _package(tmp_path, "copied_pkg").parent / ".model.gradhealth-1a2b3c.py"
    assert project.placement(copy.resolve()).module_name == "copied_pkg.model"


def test_sys_argv_is_the_file_while_it_runs_and_restored_after(tmp_path):
    saved = list(sys.argv)
    path = write(tmp_path, "import sys\nSEEN = list(sys.argv)\n\ndef build_model():\n"
                           "    assert sys.argv == SEEN\n    return nn.Linear(len(SEEN), 2)\n")
    spec = load(path)
    assert spec.model.in_features == 1 and sys.argv == saved


def test_argparse_errors_are_one_line_naming_the_argument(tmp_path):
    path = write(tmp_path, "import argparse\np = argparse.ArgumentParser()\np.add_argument('--data', required=True)\n"
                           "args = p.parse_args()\nmodel = nn.Linear(2, 2)\n")
    message = load_error(path)
    assert "--data" in message and "give those arguments defaults" in message


# --- issue 11: inputs ------------------------------------------------------------------------

def test_the_first_layer_is_found_by_execution_order_and_the_model_left_as_found(tmp_path):
    path = write(tmp_path, """
        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8))
                self.embed = nn.Embedding(20, 8)

            def forward(self, tokens):
                return self.encoder(self.embed(tokens).mean(1))
        """)
    spec = load(path)
    assert spec.inputs_description.startswith("inferred from embed (Embedding): int64")
    bn = spec.model.encoder[1]
    assert spec.model.training and bn.num_batches_tracked.item() == 0  # the trial changed nothing


def test_a_forward_needing_more_arguments_gets_the_example_inputs_to_write(tmp_path):
    path = write(tmp_path, """
        class RNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(30, 4)
                self.rnn = nn.GRU(4, 4)

            def forward(self, tokens, hidden, *, lengths):
                return self.rnn(self.embed(tokens), hidden)[0]
        """)
    message = load_error(path)
    assert "needs hidden, lengths" in message
    assert ('def example_inputs(): return (torch.randint(0, 30, (8, 32)), <hidden>,), {"lengths": <lengths>}'
            in message)


def test_example_inputs_may_pair_args_and_kwargs(tmp_path):
    spec = load(write(tmp_path, """
        class Pair(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 2)
                self.calls = []

            def forward(self, a, b=None, *, scale):
                self.calls.append((a, b, scale))
                return self.fc(a + b) * scale

        def example_inputs():
            return (torch.randn(4, 3),), {"b": torch.ones(4, 3), "scale": 2.0}
        """))
    assert spec.inputs_description == "example_inputs(): {a: float32[4, 3], b: float32[4, 3], scale: float}"
    run_probe(spec.model, spec.make_inputs, spec.loss_fn, probes=1)
    a, b, scale = spec.model.calls[-1]
    assert a.shape == (4, 3) and torch.equal(b, torch.ones(4, 3)) and scale == 2.0


def test_args_and_kwargs_for_a_star_args_forward_is_one_clear_error(tmp_path):
    path = write(tmp_path, RECORDER + "\ndef example_inputs():\n    return (torch.randn(4, 3),), {'b': 1}\n")
    assert "positional-only or *args" in load_error(path)


def test_training_through_a_function_called_at_import_is_seen():
    from gradcheck_tool.import_safety import training_at_import

    source = ("def step():\n    loss.backward()\n\ndef train():\n    step()\n\n"
              "try:\n    train()\nexcept KeyboardInterrupt:\n    pass\n")
    assert training_at_import(source) == "line 8: `train()`"
    assert training_at_import(source.replace("try:\n    train()", "try:\n    pass")) is None
