"""Property: on generated training loops in the idioms real code uses (script, function or
trainer method; the model a parameter, a global or ``self.model``; AMP on, off, or chosen by a
branch; ``optimizer.step()`` or a hand-written update; clipping missing, before backward or
after the step; LF or CRLF), every fix the engine applies leaves a file that parses, adds no
undefined name, keeps the line endings, and is left alone by a second run."""
import re

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from gradcheck_tool.api import ScanOptions
from gradcheck_tool.findings import Severity
from gradcheck_tool.fixes import engine, safety

STATIC = ScanOptions(static_only=True)


def _iteration(model: str, opt: str, scaler: str, amp: bool, manual: bool, clip: str, zero: bool) -> list[str]:
    call = f"torch.nn.utils.clip_grad_norm_({model}.parameters(), 1.0)"
    lines = [f"{opt}.zero_grad()"] if zero else []
    lines.append(f"out = {model}(x)[0].sum()")
    if clip == "before":
        lines.append(call)
    lines.append(f"{scaler}.scale(out).backward()" if amp else "out.backward()")
    if manual:
        lines += ["with torch.no_grad():", f"    for p in {model}.parameters():",
                  "        p.add_(p.grad, alpha=-0.1)"]
    elif amp:
        lines += [f"{scaler}.step({opt})", f"{scaler}.update()"]
    else:
        lines.append(f"{opt}.step()")
    if clip == "after":
        lines.append(call)
    return lines


def _loop(names: tuple[str, str, str, str], amp: str, manual: bool, clip: str, zero: bool) -> list[str]:
    model, opt, scaler, flag = names
    if amp == "branch":
        body = [f"if {flag}:"] + ["    " + line for line in _iteration(model, opt, scaler, True, manual, clip, zero)]
        body += ["else:"] + ["    " + line for line in _iteration(model, opt, scaler, False, manual, clip, zero)]
    else:
        body = _iteration(model, opt, scaler, amp == "on", manual, clip, zero)
    return ["for x in loader:"] + ["    " + line for line in body]


@st.composite
def training_files(draw) -> str:
    container = draw(st.sampled_from(["script", "function", "method"]))
    layer = draw(st.sampled_from(["nn.LSTM(8, 8)", "nn.GRU(4, 4)", "nn.Linear(8, 8)"]))
    optimizer = draw(st.sampled_from(["torch.optim.SGD", "torch.optim.AdamW", "DistributedOptimizer"]))
    amp = draw(st.sampled_from(["off", "on", "branch"]))
    options = dict(manual=draw(st.booleans()), clip=draw(st.sampled_from(["none", "before", "after"])),
                   zero=draw(st.booleans()))
    head = ["import torch", "from torch import nn", "from torch.distributed.optim import DistributedOptimizer", ""]
    scaler = 'torch.amp.GradScaler("cuda")'
    if container == "script":
        lines = head + [f"model = {layer}", f"opt = {optimizer}(model.parameters(), lr=0.1)", "use_amp = True"]
        lines += [f"scaler = {scaler}"] if amp != "off" else []
        lines += _loop(("model", "opt", "scaler", "use_amp"), amp, **options)
    elif container == "function":
        # the model the function gets, or (badly) the global its caller also passes
        model = draw(st.sampled_from(["model", "net"]))
        lines = head + ["def train(model, opt, loader, scaler=None, use_amp=False):"]
        lines += ["    " + line for line in _loop((model, "opt", "scaler", "use_amp"), amp, **options)]
        lines += ["", 'if __name__ == "__main__":', f"    net = {layer}",
                  f"    train(net, {optimizer}(net.parameters(), lr=0.1), [])"]
    else:
        lines = head + ["class Trainer:", "    def __init__(self, model, use_amp):", "        self.model = model",
                        f"        self.opt = {optimizer}(model.parameters(), lr=0.1)", "        self.use_amp = use_amp"]
        if amp != "off":
            guarded = draw(st.booleans())
            lines += (["        if use_amp:", f"            self.scaler = {scaler}"] if guarded
                      else [f"        self.scaler = {scaler}"])
        lines += ["", "    def fit(self, loader):"]
        lines += ["        " + line for line in _loop(("self.model", "self.opt", "self.scaler", "self.use_amp"),
                                                       amp, **options)]
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + newline


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=training_files())
def test_generated_loops_fix_safely_and_once(tmp_path, source):
    path = tmp_path / "train.py"
    path.write_bytes(source.encode())
    result = engine.fix_file(path, STATIC, unsafe=True, level=Severity.INFO)
    fixed = result.fixed
    compile(fixed, "train.py", "exec")
    assert safety.new_undefined(source, fixed) == set()
    if "\r\n" in source:
        assert not re.search(r"(?<!\r)\n", fixed), "an inserted line ends in LF inside a CRLF file"
    if result.changed:
        again = tmp_path / "again.py"
        again.write_bytes(fixed.encode())
        assert not engine.fix_file(again, STATIC, unsafe=True, level=Severity.INFO).changed
