"""The ``gradhealth`` command's click layer: its commands and options, parsed and handed to
:mod:`.command` (scan, fix) and :mod:`.registry` (rule); a usage error becomes the one
``gradhealth: error:`` line of :mod:`.toplevel`, with a pointer to the help.

Exit codes: 0 nothing at or above --fail-on; 1 findings at or above it; 2 the tool
could not do its job (one line on stderr names the cause and the remedy: toplevel.py).
"""
from __future__ import annotations

import sys
from typing import Optional

import click

from gradcheck_tool import __version__, command, toplevel
from gradcheck_tool.config import LIMITS
from gradcheck_tool.errors import GradhealthError
from gradcheck_tool.findings import Severity
from gradcheck_tool.toplevel import fail as _fail

FORMATS = ("text", "json", "sarif", "github", "html")


class Gradhealth(click.Group):
    """click's group under :func:`toplevel.guarded`: a usage error is one ``gradhealth: error:``
    line pointing to the help (exit 2), a bare ``gradhealth`` prints the help, and everything else
    ends as the top-level handler says."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)

        def parse_and_run():
            try:
                return super(Gradhealth, self).main(args, prog_name or "gradhealth", complete_var,
                                                    standalone_mode=False, **extra)
            except click.exceptions.Exit as err:
                return err.exit_code
            except click.Abort as err:  # click's form of Ctrl-C
                raise KeyboardInterrupt from err
            except click.ClickException as err:
                ctx = getattr(err, "ctx", None)
                if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `gradhealth`: the help
                    click.echo(ctx.get_help())
                    return 0
                hint = f"; see '{ctx.command_path} --help'" if ctx is not None else ""
                _fail(f"{err.format_message().rstrip('.')}{hint}")

        toplevel.guarded(parse_and_run, verbose="-v" in args or "--verbose" in args)


@click.group(cls=Gradhealth, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gradhealth")
def main() -> None:
    """gradhealth: find what will make a PyTorch model explode, vanish or stall before you train it."""


_SCAN_OPTIONS = [
    click.argument("paths", nargs=-1, required=True),
    click.option("--static-only", is_flag=True, default=None,
                 help="Only read the source (GH0xx, GH2xx): never import torch or run the file's code."),
    click.option("--model", "model_expr", metavar="EXPR", help="Expression that builds the model, evaluated in the "
                 'file\'s namespace, e.g. "GPT(GPTConfig(n_layer=2))".'),
    click.option("--probes", type=click.IntRange(*LIMITS["probes"]), help="Probe batches to run.  [default: 3]"),
    click.option("--train-steps", type=click.IntRange(*LIMITS["train-steps"]), metavar="N",
                 help="Steps of the file's own optimizer to run (GH140, GH143); 0: none.  [default: 10]"),
    click.option("--curvature", is_flag=True,
                 help="Also measure the loss's sharpness at init and the lr the file's optimizer is stable at "
                      "(GH144, GH140's advice; ~10-20 Hessian-vector products, needs loss_fn)."),
    click.option("--amp", type=click.Choice(["fp16", "bf16"]),
                 help="Also run the file's optimizer steps under real autocast in this dtype (fp16 with a "
                      "GradScaler, the file's own settings) and judge GH150/GH151 from the skipped steps and the "
                      "scale; an fp32 file is judged as if it trained so."),
    click.option("--seed", type=click.IntRange(*LIMITS["seed"]),
                 help="Seed for the model's init, inputs, dropout and the default loss.  [default: 0]"),
    click.option("--device", help="cpu, cuda, cuda:N or auto.  [default: cpu]"),
    click.option("--input-shape", metavar="N,C,...", help="Shape of random inputs when the file has no example_inputs()."),
    click.option("--input-dtype", metavar="DTYPE", help="dtype for --input-shape (float32, int64, ...)."),
    click.option("--select", multiple=True, metavar="CODES", help="Rules to run: codes, prefixes (GH2) or names."),
    click.option("--extend-select", multiple=True, metavar="CODES", help="Rules to add to the selection."),
    click.option("--ignore", multiple=True, metavar="CODES", help="Rules to skip."),
    click.option("--exclude", multiple=True, metavar="GLOBS", help="Paths to skip (replaces the default list)."),
    click.option("--extend-exclude", multiple=True, metavar="GLOBS", help="Paths to skip, on top of the default list."),
    click.option("--force-exclude", is_flag=True,
                 help="Apply excludes to files named on the command line too (pre-commit)."),
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True),
    click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report here."),
    click.option("--fail-on", type=click.Choice([s.value for s in Severity]),
                 help="Exit 1 when a finding is at or above this severity.  [default: warning]"),
    click.option("--timeout", type=float, metavar="SECONDS",
                 help="Wall-clock limit for each file's probe, which runs in a child process; 0: none.  [default: 120]"),
    click.option("--max-memory", type=float, metavar="GIB",
                 help="Memory cap for the probing child on CPU; 0: none.  [default: 80% of RAM]"),
    click.option("--unsafe-fixes", is_flag=True, help="With fixing: also apply fixes that change training behaviour."),
    click.option("--diff", is_flag=True, help="With fixing: print the unified diff, write nothing."),
    click.option("--fix-level", type=click.Choice([s.value for s in Severity]),
                 help="With fixing: fix findings at or above this severity.  [default: --fail-on]"),
    click.option("-v", "--verbose", is_flag=True, help="Show tracebacks for errors."),
    click.option("--jobs", type=click.IntRange(0, 1024), default=0, metavar="N",
                 help="Processes for a static-only scan of many files; 0: one per CPU, 1: this process only."),
]


def _scan_options(command):
    for option in reversed(_SCAN_OPTIONS):
        command = option(command)
    return command


@main.command()
@_scan_options
@click.option("--fix", is_flag=True, help="Apply fixes, as `gradhealth fix` does.")
@click.option("--distributed", is_flag=True,
              help="Under torchrun: shard the model over the job's processes with FSDP2 and probe it there "
                   "(one file; rank 0 writes the report).")
def scan(fix: bool, **kwargs) -> None:
    """Check the training code and probe the models in PATHS (files or directories).

    Static rules read the source.  The probe imports each file under a private name (its
    __main__ block never runs), in a child process, and finds the model from --model,
    build_model(), a module-level nn.Module, or the one nn.Module class that builds with no
    arguments.  Inputs come from example_inputs(), --input-shape, or the first layer; the loss
    from loss_fn(output, inputs) or a task-shaped default (the model's own loss or, for a CTC
    model, its CTC loss; cross-entropy on random labels for logits; else MSE).  Settings may also live in [tool.gradhealth] of
    the nearest pyproject.toml; options given here win.
    """
    command.run(fix=fix or kwargs["diff"], **kwargs)


@main.command()
@_scan_options
def fix(**kwargs) -> None:
    """Apply the fixes for the findings in PATHS, verified by scanning (and probing) again.

    Safe fixes keep meaning; --unsafe-fixes also applies those that change training
    (inserting clipping, changing init or the learning rate, adding weight decay).  Only
    findings at or above --fix-level (default: --fail-on) are fixed.  A fix whose new code
    cannot be proven to run where it lands (a name not bound there, a method its receiver's
    type lacks) is withheld with the reason.  Runtime fixes are verified by probing the patched
    file before it is written, and taken back when its numbers do not improve.  The run ends
    with one line: fixed, no automatic fix, withheld.  Exits 0 when nothing at --fail-on
    remains (with --diff: 1 when there is something to change; 2 when a probe could not run).
    """
    command.run(fix=True, **kwargs)


@main.command()
@click.argument("code", required=False)
@click.option("--all", "show_all", is_flag=True, help="List every rule.")
def rule(code: Optional[str], show_all: bool) -> None:
    """Show a rule's documentation, by code (GH102) or name (vanishing-gradients)."""
    from gradcheck_tool import registry

    if show_all or not code:
        for rule_cls in registry.ALL_RULES.values():
            click.echo(f"{rule_cls.CODE}  {rule_cls.NAME:28s} {registry.summary(rule_cls)}")
        return
    try:
        match = registry.find(code)
    except GradhealthError as err:
        _fail(str(err))
    click.echo(f"{match.CODE} {match.NAME} (default severity: {match.SEVERITY.value})\n")
    click.echo(registry.documentation(match))


if __name__ == "__main__":  # pragma: no cover
    main()
