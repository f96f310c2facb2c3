"""Whatever source comes in, check_source returns findings and never raises."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradcheck_tool.findings import Finding
from gradcheck_tool.static import STATIC_RULES, check_source

EXAMPLES = [s for rule in STATIC_RULES.values() for s in rule.BAD + rule.GOOD]
FRAGMENTS = [
    "optimizer.step()", "scaler.step(opt)", "loss.backward()", "scaler.scale(loss).backward()",
    "opt.zero_grad()", "p.grad = None", "w -= lr * w.grad", "scaler.unscale_(opt)",
    "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)", "nn.init.normal_(w)",
    "nn.Parameter(torch.randn(4, 4))", "nn.Sequential(*[nn.Tanh()] * 8)",
    "x = torch.tanh(x)", "optim.Adam(p, lr=1.0)", "for b in data:", "while True:",
    "def f(self):", "class A(nn.Module):", "if x:", "else:", "with ctx:", "return x",
    "layers.append(nn.Sigmoid())", "layers = []", "for _ in range(9):", "(", ")", "]", ":",
    "lambda: opt.step()", "self.step(b)", "train_step(b)", "opt.step(closure)",
]

ACTIONS = ["delete", "duplicate", "swap", "indent", "dedent", "splice"]
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def assert_well_formed(source: str, findings: list[Finding]) -> None:
    assert isinstance(findings, list)
    rows = source.count("\n") + source.count("\r") + 2
    for finding in findings:
        assert finding.code in STATIC_RULES or finding.code == "GH001"
        if finding.location is not None:
            assert 1 <= finding.location.row <= rows and finding.location.column >= 1


@st.composite
def mutated_examples(draw) -> str:
    lines = draw(st.sampled_from(EXAMPLES)).splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(ACTIONS))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif action == "indent":
            lines[i] = "    " + lines[i]
        elif action == "dedent":
            lines[i] = lines[i][4:] if lines[i].startswith("    ") else lines[i]
        else:
            indent = draw(st.sampled_from(["", "    ", "        "]))
            lines.insert(i, indent + draw(st.sampled_from(FRAGMENTS)) + "\n")
    return "".join(lines)


@SETTINGS
@given(mutated_examples())
def test_mutated_examples_never_raise(source: str) -> None:
    assert_well_formed(source, check_source(source, "fuzz.py"))


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(["", "    ", "        ", "\t"]),
                          st.sampled_from(FRAGMENTS)), max_size=25))
def test_fragment_soup_never_raises(parts) -> None:
    source = "".join(f"{indent}{fragment}\n" for indent, fragment in parts)
    assert_well_formed(source, check_source(source, "fuzz.py"))


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(source: str) -> None:
    assert_well_formed(source, check_source(source, "fuzz.py"))
