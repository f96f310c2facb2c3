"""Fix safety, proven per edit: the shapes of the patches that crashed real code are withdrawn,
and the ones that are right stay.  Each case is the original file and the file with one
inserted line, as a codemod would write it."""
import textwrap

import pytest

from gradcheck_tool.fixes import safety


def _insert(source: str, after: str, line: str) -> str:
    """``source`` with ``line`` inserted after the first line containing ``after``, at its indent."""
    lines = source.splitlines(keepends=True)
    at = next(i for i, text in enumerate(lines) if after in text)
    indent = lines[at][: len(lines[at]) - len(lines[at].lstrip())]
    return "".join(lines[: at + 1] + [f"{indent}{line}\n"] + lines[at + 1:])


TRAINER = textwrap.dedent("""\
    import torch

    class Trainer:
        def __init__(self, config, model, optimizer):
            self.config, self.model, self.optimizer = config, model, optimizer
            if self.config.use_amp:
                self.scaler = torch.amp.GradScaler("cuda")

        def run_batch(self, loss):
            if self.config.use_amp:
                self.scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.scaler.step(self.optimizer)
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()

    trainer = Trainer(cfg, model, torch.optim.AdamW(model.parameters()))
""")


def test_scaler_set_under_a_condition_is_usable_only_under_it():
    amp_branch = _insert(TRAINER, "self.scaler.scale(loss)", "self.scaler.unscale_(self.optimizer)")
    assert safety.problems(TRAINER, amp_branch) == []
    plain_branch = _insert(TRAINER, "        loss.backward()", "self.scaler.unscale_(self.optimizer)")
    (reason,) = safety.problems(TRAINER, plain_branch)
    assert "`self.scaler` is set only when `self.config.use_amp`" in reason


def test_optimizer_type_followed_through_the_constructor_call():
    zero = _insert(TRAINER, "self.optimizer.step()", "self.optimizer.zero_grad()")
    assert safety.problems(TRAINER, zero) == []  # Trainer(..., torch.optim.AdamW(...)) at the call site
    unknown = TRAINER.replace("torch.optim.AdamW(model.parameters())", "make_optimizer(model)")
    (reason,) = safety.problems(unknown, _insert(unknown, "self.optimizer.step()", "self.optimizer.zero_grad()"))
    assert "type is unknown" in reason


RPC = textwrap.dedent("""\
    from torch import optim
    from torch.distributed.optim import DistributedOptimizer

    def run(net, data):
        opt = DistributedOptimizer(optim.SGD, net.parameter_rrefs(), lr=0.05)
        for x in data:
            with dist_autograd.context() as cid:
                dist_autograd.backward(cid, [net(x).sum()])
                opt.step(cid)
""")


def test_distributed_optimizer_has_no_zero_grad():
    (reason,) = safety.problems(RPC, _insert(RPC, "opt.step(cid)", "opt.zero_grad()"))
    assert reason == "`opt` is a DistributedOptimizer, which has no `zero_grad()`"


GAT = textwrap.dedent("""\
    import torch

    def train_iter(epoch, model, optimizer, x, y):
        model.train()
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()

    if __name__ == "__main__":
        gat_net = torch.nn.Linear(4, 2)
        optimizer = torch.optim.Adam(gat_net.parameters())
        for epoch in range(10):
            train_iter(epoch, gat_net, optimizer, x, y)
""")


def test_a_global_bound_only_under_main_is_not_the_functions_model():
    clip = "torch.nn.utils.clip_grad_norm_({}.parameters(), max_norm=1.0)"
    (reason,) = safety.problems(GAT, _insert(GAT, "loss.backward()", clip.format("gat_net")))
    assert reason.startswith("`gat_net` is not bound")
    assert safety.problems(GAT, _insert(GAT, "loss.backward()", clip.format("model"))) == []


@pytest.mark.parametrize("source,after,line,ok", [
    # a local assigned later in the function, or in one branch only
    ("def f(a):\n    a.backward()\n    b = 1\n", "a.backward()", "b.step()", False),
    ("def f(a, c):\n    if c:\n        b = 1\n    a.backward()\n", "a.backward()", "b.step()", False),
    ("def f(a, c):\n    if c:\n        b = 1\n    else:\n        b = 2\n    a.backward()\n", "a.backward()",
     "print(b)", True),
    # module-level names a script binds before its loop; loop and with targets
    ("import torch\nm = 1\nfor x in y:\n    x.backward()\n", "x.backward()", "print(m, x, torch)", True),
    ("with open(p) as fh:\n    fh.read()\n", "fh.read()", "print(fh)", True),
    # a name that exists nowhere
    ("x = 1\n", "x = 1", "print(nowhere)", False),
    # self.attr never set
    ("class T:\n    def f(self):\n        pass\n", "def f", "print(self.model)", False),
])
def test_binding_on_every_path(source, after, line, ok):
    assert (safety.problems(source, _insert(source, after, line)) == []) is ok


def test_undefined_names_compared_before_and_after():
    assert safety.new_undefined("print(a)\n", "print(a)\nprint(b)\n") == {"b"}
    assert safety.new_undefined("from x import *\n", "from x import *\nprint(b)\n") == set()
    assert safety.new_undefined("def f(q):\n    return q\n", "def f(q):\n    return q, r\n") == {"r"}
