"""Probe cost at GPT-2 scale: wall time and peak memory as ratios to bare forward+backward.

    python benchmarks/probe_scale.py                        # GPT-2 small (124M), 4 x 128 tokens, CPU
    python benchmarks/probe_scale.py --device cuda          # the same on a GPU
    python benchmarks/probe_scale.py --find-largest         # GPT-2 small/medium/large/xl/... at 1 x 128
    python benchmarks/probe_scale.py --profile              # where the probe's extra time goes

The model is ``GPT2LMHeadModel(GPT2Config(...))``: random init from a config, nothing is
downloaded.  Both arms do exactly the work of one training step per batch, with the probe's
default loss (``compute_loss(None, ...)``: cross-entropy of the logits against random labels):

    bare:   torch.manual_seed(seed + i); inputs = make_inputs(); output = model(inputs);
            loss = compute_loss(None, output, inputs, seed + i, model); loss.backward();
            model.zero_grad(set_to_none=True)
    probe:  gradcheck_tool.probe.engine.run_probe(model, make_inputs, None, probes=N)

Time: one process, one model, a warm-up of each arm, then the arms alternate and the best of
R repeats of each is compared (the machine may be shared: ratios are taken within one run).
On CUDA every timed region is bracketed by ``torch.cuda.synchronize()``.

Memory: peak RSS (``ru_maxrss``) only ever grows, so each arm runs in its own fresh
subprocess of this script (``--arm bare|probe``), which reports its peak after building the
model (the baseline) and after the N passes.  Reported: the ratio of peaks and the ratio of
increments over the baseline (what the passes themselves cost).  Each pair runs twice: under
glibc's default malloc (what a user gets; its peak RSS depends on heap fragmentation, +-0.2 GiB
run to run at GPT-2 small) and with ``MALLOC_MMAP_THRESHOLD_=131072`` (peak RSS tracks live
tensors); ``--malloc`` picks one.  On CUDA also ``torch.cuda.max_memory_allocated``, over the model-built baseline.

On CUDA, note that the default loss draws its cotangent on the CPU and copies it over; at GPT-2's
vocabulary that dominates both arms (``--profile`` shows it, with a device-side variant).

``--find-largest`` runs both arms in subprocesses for growing GPT-2 configs and stops before
a size whose predicted peak (the previous size's measured increment per parameter, scaled)
would exceed ``--stop-gib``; a watchdog kills any child whose RSS passes ``--kill-gib``.
It reports the largest size that completed within ``--limit-gib`` and the extrapolated limit.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gradcheck_tool.probe import engine  # noqa: E402
from gradcheck_tool.probe.collector import l2  # noqa: E402
from gradcheck_tool.probe.engine import call_model, run_probe  # noqa: E402
from gradcheck_tool.probe.outputs import compute_loss  # noqa: E402

GIB = 1024**3
# (name, n_layer, n_embd, n_head): the GPT-2 family, then two larger points for the CPU limit.
LADDER = [
    ("gpt2 (124M)", 12, 768, 12),
    ("gpt2-medium (355M)", 24, 1024, 16),
    ("gpt2-large (774M)", 36, 1280, 20),
    ("gpt2-xl (1.5B)", 48, 1600, 25),
    ("64x1600 (2.0B)", 64, 1600, 25),
    ("32x2560 (2.6B)", 32, 2560, 32),
    ("40x2560 (3.2B)", 40, 2560, 32),
    ("48x3072 (5.6B)", 48, 3072, 32),
]


# --------------------------------------------------------------------------- model and arms
def build(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=args.layers, n_embd=args.embd, n_head=args.heads)
    model = GPT2LMHeadModel(config).to(args.device)
    vocab, shape, device = config.vocab_size, (args.batch, args.seq), args.device

    def make_inputs():
        return torch.randint(0, vocab, shape, device=device)

    return model, make_inputs


def bare(model, make_inputs, batches: int, seed: int = 0) -> None:
    """What run_probe does per batch, minus the probe: a plain training step without the optimizer."""
    model.train()
    for batch in range(batches):
        torch.manual_seed(seed + batch)
        inputs = make_inputs()
        output = call_model(model, inputs)
        loss = compute_loss(None, output, inputs, seed + batch, model)
        loss.backward()
        model.zero_grad(set_to_none=True)
        del output, loss, inputs


def probe(model, make_inputs, batches: int, seed: int = 0):
    return run_probe(model, make_inputs, None, probes=batches, seed=seed)


ARMS = {"bare": bare, "probe": probe}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def describe(args) -> str:
    return (f"GPT2LMHeadModel(GPT2Config(n_layer={args.layers}, n_embd={args.embd}, n_head={args.heads})), "
            f"batch {args.batch} x {args.seq} tokens, device {args.device}")


# --------------------------------------------------------------------------- one arm, own process
def arm_main(args) -> None:
    """Child: build, note the baseline, run one arm, print one RESULT line of JSON."""
    cuda = args.device.startswith("cuda")
    result = {"arm": args.arm, "rss_start": maxrss_bytes()}
    model, make_inputs = build(args)
    result["params"] = sum(p.numel() for p in model.parameters())
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        result["cuda_base"] = torch.cuda.memory_allocated()
        result["cuda_zero"] = 0
    result["rss_base"] = maxrss_bytes()
    result["rss_now_base"] = rss_bytes()
    if args.arm == "bare":
        run = lambda: bare(model, make_inputs, args.batches)  # noqa: E731
    else:
        run = lambda: probe(model, make_inputs, args.batches)  # noqa: E731
    result["time_s"] = timed(run, args.device)
    result["rss_peak"] = maxrss_bytes()
    if cuda:
        result["cuda_peak"] = torch.cuda.max_memory_allocated()
        result["cuda_total"] = torch.cuda.get_device_properties(torch.device(args.device)).total_memory
    print("RESULT " + json.dumps(result), flush=True)


def _child_argv(args, arm: str, **over) -> list[str]:
    vals = dict(layers=args.layers, embd=args.embd, heads=args.heads, batch=args.batch, seq=args.seq,
                batches=args.batches, device=args.device, threads=args.threads)
    vals.update(over)
    argv = [sys.executable, str(Path(__file__).resolve()), "--arm", arm]
    for key, value in vals.items():
        if value is not None:
            argv += [f"--{key}", str(value)]
    return argv


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


# glibc serves allocations below a dynamic threshold (raised up to 32 MiB as large blocks are
# freed) from its heaps, and freed heap memory mostly stays resident: peak RSS then depends on
# the order of frees, not only on what is alive.  A fixed 128 KiB threshold sends every tensor
# of note to mmap, returned to the OS on free, so peak RSS tracks live tensors.
MALLOC_MODES = {"glibc default": {}, "MALLOC_MMAP_THRESHOLD_=131072": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def run_arm(args, arm: str, kill_bytes: float = math.inf, env: dict | None = None, **over) -> dict:
    """Run one arm in a fresh process; kill it if its RSS passes kill_bytes (polled every 0.1 s)."""
    proc = subprocess.Popen(_child_argv(args, arm, **over), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})
    killed, watched_peak = False, 0
    status = f"/proc/{proc.pid}/status"
    while proc.poll() is None:
        try:
            with open(status) as f:
                rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
        except (FileNotFoundError, ProcessLookupError):
            break
        watched_peak = max(watched_peak, rss)
        if rss > kill_bytes:
            proc.kill()
            killed = True
            break
        time.sleep(0.1)
    out, err = proc.communicate()
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if killed or line is None:
        reason = f"killed at RSS {watched_peak / GIB:.1f} GiB (over {kill_bytes / GIB:.1f})" if killed else (
            f"exit {proc.returncode}: {err.strip().splitlines()[-1] if err.strip() else 'no output'}")
        return {"arm": arm, "failed": reason, "rss_watched": watched_peak}
    return json.loads(line[len("RESULT "):])


# --------------------------------------------------------------------------- reports
def ratio_line(label: str, probe_v: float, bare_v: float, unit: str, scale: float, target=None) -> str:
    head = f"  {label:<34} bare {bare_v / scale:9.3f} {unit}   probe {probe_v / scale:9.3f} {unit}   ratio "
    if bare_v <= 0:
        return head + "   n/a (nothing over the baseline)"
    r = probe_v / bare_v
    verdict = "" if target is None else ("  (target <= %.2fx: %s)" % (target, "met" if r <= target else "MISSED"))
    return head + f"{r:6.3f}x{verdict}"


def time_main(args, model, make_inputs) -> None:
    print(f"\n== time: {args.batches} batches per arm, best of {args.repeats}, arms alternating, one process ==")
    # Warm-up (allocator, kernels, first-call paths), and a check that both arms do the same work:
    # with one batch the probe's global gradient norm must equal plain autograd's.
    model.train()
    torch.manual_seed(0)
    inputs = make_inputs()
    compute_loss(None, call_model(model, inputs), inputs, 0, model).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    plain64 = math.sqrt(sum(float(g.double().norm()) ** 2 for g in grads))
    plain32 = math.sqrt(sum(float(l2(g)) ** 2 for g in grads))  # the probe's own norm on bare's grads
    model.zero_grad(set_to_none=True)
    del grads
    got = probe(model, make_inputs, 1).total_grad_norms[0]
    print(f"  warm-up check, global grad norm: probe {got:.7g}; bare's grads through the probe's l2 {plain32:.7g} "
          f"(rel diff {abs(got - plain32) / plain32:.1e}: same gradients); "
          f"in float64 {plain64:.7g} (rel diff {abs(got - plain64) / plain64:.1e}: float32 norm accuracy)")
    bare_t, probe_t = [], []
    for r in range(args.repeats):
        bare_t.append(timed(lambda: bare(model, make_inputs, args.batches), args.device))
        probe_t.append(timed(lambda: probe(model, make_inputs, args.batches), args.device))
        print(f"  repeat {r + 1}: bare {bare_t[-1]:8.3f} s   probe {probe_t[-1]:8.3f} s   "
              f"ratio {probe_t[-1] / bare_t[-1]:.3f}x", flush=True)
    pairs = sorted(p / b for p, b in zip(probe_t, bare_t))
    print(ratio_line("wall time (best of %d)" % args.repeats, min(probe_t), min(bare_t), "s", 1.0, target=1.15))
    print(f"  {'per batch (best)':<34} bare {min(bare_t) / args.batches:9.3f} s    probe "
          f"{min(probe_t) / args.batches:9.3f} s    median paired ratio {pairs[len(pairs) // 2]:.3f}x")


def memory_main(args) -> None:
    modes = MALLOC_MODES if args.malloc == "both" else {
        k: v for k, v in MALLOC_MODES.items() if bool(v) == (args.malloc == "fixed")}
    for mode, env in modes.items():
        print(f"\n== peak memory: each arm in a fresh subprocess, {args.batches} batches, malloc: {mode} ==")
        res = {arm: run_arm(args, arm, env=env) for arm in ("bare", "probe")}
        failed = [f"{arm}: FAILED ({r['failed']})" for arm, r in res.items() if "failed" in r]
        if failed:
            print("  " + "; ".join(failed))
            continue
        memory_report(res)


def memory_report(res: dict) -> None:
    b, p = res["bare"], res["probe"]
    for arm, r in res.items():
        print(f"  {arm:<5} maxrss: at start {r['rss_start'] / GIB:6.3f} GiB, model built {r['rss_base'] / GIB:6.3f} GiB "
              f"(current {r['rss_now_base'] / GIB:6.3f}), after passes {r['rss_peak'] / GIB:6.3f} GiB "
              f"[{r['time_s']:.1f} s]")
    print(ratio_line("peak RSS", p["rss_peak"], b["rss_peak"], "GiB", GIB, target=1.10))
    print(ratio_line("peak RSS - model-built baseline", p["rss_peak"] - p["rss_base"],
                     b["rss_peak"] - b["rss_base"], "GiB", GIB))
    if "cuda_peak" in b:
        print(ratio_line("cuda max_memory_allocated", p["cuda_peak"], b["cuda_peak"], "GiB", GIB, target=1.10))
        print(ratio_line("cuda peak - model baseline", p["cuda_peak"] - p["cuda_base"],
                         b["cuda_peak"] - b["cuda_base"], "GiB", GIB))


def find_largest_main(args) -> None:
    cuda = args.device.startswith("cuda")
    # Memory per parameter is taken over what the process held before the model existed:
    # RSS at start on CPU (interpreter, torch), nothing on CUDA (the model itself is allocated there).
    key, base_key = ("cuda_peak", "cuda_zero") if cuda else ("rss_peak", "rss_start")
    mode = "MALLOC_MMAP_THRESHOLD_=131072" if args.malloc == "fixed" else "glibc default"
    env = MALLOC_MODES[mode]
    limit = args.limit_gib * GIB
    if cuda:
        limit = min(limit, torch.cuda.get_device_properties(torch.device(args.device)).total_memory)
    print(f"\n== largest model: batch {args.batch} x {args.seq}, {args.batches} batches, device {args.device}; "
          f"limit {limit / GIB:.1f} GiB ({'cuda max_memory_allocated' if cuda else 'peak RSS'}), "
          f"stop when predicted > {args.stop_gib:.1f} GiB, kill a child at RSS > {args.kill_gib:.1f} GiB; "
          f"malloc: {mode} ==")
    print(f"  {'config':<20} {'params':>8} {'bare peak':>10} {'probe peak':>11} {'ratio':>6} "
          f"{'bytes/param':>11} {'bare s':>7} {'probe s':>8}")
    largest, last = None, None
    for name, n_layer, n_embd, n_head in LADDER:
        params = _gpt2_params(n_layer, n_embd)
        if last is not None:
            per_param = (last[key] - last[base_key]) / last["params"]
            predicted = last[base_key] + per_param * params
            if predicted > args.stop_gib * GIB or (not cuda and predicted > _mem_available() - 1 * GIB):
                print(f"  {name:<20} {params / 1e9:7.2f}B  not run: predicted peak {predicted / GIB:.1f} GiB "
                      f"({per_param:.2f} B/param from {last['params'] / 1e9:.2f}B; "
                      f"MemAvailable {_mem_available() / GIB:.1f} GiB)")
                break
        over = dict(layers=n_layer, embd=n_embd, heads=n_head)
        arms = ("bare", "probe") if args.with_bare else ("probe",)
        res = {arm: run_arm(args, arm, kill_bytes=args.kill_gib * GIB, env=env, **over) for arm in arms}
        failed = [f"{a}: {r['failed']}" for a, r in res.items() if "failed" in r]
        if failed:
            print(f"  {name:<20} {params / 1e9:7.2f}B  FAILED: {'; '.join(failed)}")
            break
        p = res["probe"]
        b = res.get("bare")
        bpp = (p[key] - p[base_key]) / p["params"]
        within = p[key] <= limit
        print(f"  {name:<20} {p['params'] / 1e9:7.2f}B "
              f"{(b[key] / GIB if b else math.nan):9.2f}G {p[key] / GIB:10.2f}G "
              f"{(p[key] / b[key] if b else math.nan):6.3f} {bpp:11.2f} "
              f"{(b['time_s'] if b else math.nan):7.1f} {p['time_s']:8.1f}"
              f"{'' if within else '  OVER LIMIT'}", flush=True)
        if not within:
            break
        largest, last = (name, p), p
    if largest is None:
        print("  nothing completed")
        return
    name, p = largest
    per_param = (p[key] - p[base_key]) / p["params"]
    extrapolated = (limit - p[base_key]) / per_param
    print(f"  largest completed: {name}, {p['params'] / 1e9:.2f}B parameters, probe peak {p[key] / GIB:.2f} GiB")
    print(f"  extrapolated limit: ({limit / GIB:.1f} GiB - {p[base_key] / GIB:.2f} GiB process baseline) / "
          f"{per_param:.2f} bytes per parameter = {extrapolated / 1e9:.2f}B parameters at batch {args.batch} x {args.seq}")


def _gpt2_params(n_layer: int, n_embd: int, vocab: int = 50257, n_pos: int = 1024) -> int:
    # per block: attn 4d^2+4d, mlp 8d^2+5d, two LayerNorms 4d; plus wte, wpe, ln_f (lm_head is tied)
    return n_layer * (12 * n_embd * n_embd + 13 * n_embd) + (vocab + n_pos) * n_embd + 2 * n_embd


# --------------------------------------------------------------------------- profile
def profile_main(args, model, make_inputs) -> None:
    """Where the probe's extra time goes: phase timers, ablations, and cProfile's top entries."""
    from gradcheck_tool.probe import collector as collector_mod

    print(f"\n== profile of the probe arm ({args.batches} batches) ==")
    probe(model, make_inputs, 1)  # warm-up
    phases: dict[str, list[float]] = {}

    def timer(label, fn):
        def wrapped(*a, **k):
            sync(args.device)
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                sync(args.device)
                phases.setdefault(label, []).append(time.perf_counter() - t)
        return wrapped

    def timed_factory(label, factory):
        def make(self, *a):
            return timer(label, factory(self, *a))
        return make

    C = collector_mod.Collector
    originals = {
        (engine, "classify"): engine.classify, (engine, "_param_stats"): engine._param_stats,
        (engine, "_layer_stats"): engine._layer_stats, (engine, "compute_loss"): engine.compute_loss,
        (engine, "call_model"): engine.call_model,
        (C, "end_pass"): C.end_pass, (C, "queue_param_grads"): C.queue_param_grads,
        (C, "_forward_hook"): C._forward_hook, (C, "_grad_hook"): C._grad_hook,
    }
    try:
        engine.classify = timer("classify (init scheme, per weight)", originals[(engine, "classify")])
        engine._param_stats = timer("_param_stats (param norms)", originals[(engine, "_param_stats")])
        engine._layer_stats = timer("_layer_stats (incl. classify)", originals[(engine, "_layer_stats")])
        engine.compute_loss = timer("loss (default, both arms)", originals[(engine, "compute_loss")])
        engine.call_model = timer("forward incl. forward hooks", originals[(engine, "call_model")])
        C.end_pass = timer("end_pass (host transfer)", originals[(C, "end_pass")])
        C.queue_param_grads = timer("queue_param_grads (grad norms)", originals[(C, "queue_param_grads")])
        C._forward_hook = timed_factory("forward hooks (sum)", originals[(C, "_forward_hook")])
        C._grad_hook = timed_factory("grad hooks (sum)", originals[(C, "_grad_hook")])
        total = timed(lambda: probe(model, make_inputs, args.batches), args.device)
    finally:
        for (owner, attr), fn in originals.items():
            setattr(owner, attr, fn)
    print(f"  instrumented probe {total:.3f} s; time per phase (calls):")
    for label, ts in sorted(phases.items(), key=lambda kv: -sum(kv[1])):
        print(f"    {label:<40} {sum(ts):8.3f} s  ({len(ts)} calls, {1e3 * sum(ts) / len(ts):.3f} ms each)")

    # Ablations: the probe's time with one piece stubbed out, all variants interleaved, best of R.
    from gradcheck_tool.probe.record import InitStats

    memo: dict = {}

    def classify_once(w):  # what deduplicating tied weights (wte / lm_head) would save
        key = (w.data_ptr(), tuple(w.shape), tuple(w.stride()))
        if key not in memo:
            memo[key] = originals[(engine, "classify")](w)
        return memo[key]

    from gradcheck_tool.probe import outputs as outputs_mod

    def device_cotangent_loss(output, seed):  # the default loss with v drawn on the output's device
        tensors = [t for t in outputs_mod.floating_outputs(output) if t.requires_grad]
        total = sum(t.numel() for t in tensors)
        gen = torch.Generator(device=tensors[0].device).manual_seed(seed)
        return sum((t.float() * torch.randn(t.shape, generator=gen, device=t.device)).sum()
                   for t in tensors) / math.sqrt(total)

    on_device = [(outputs_mod, "default_loss", device_cotangent_loss)]
    variants = {
        "bare": None,
        "probe": [],
        "probe without classify()": [(engine, "classify", lambda w: InitStats("skipped", 0.0, 0, 0, 0.0))],
        "probe, classify once per tied weight": [(engine, "classify", classify_once)],
        "probe without forward hooks": [(C, "_forward_hook", lambda self, acc: (lambda *a: None))],
        "probe without grad hooks": [(C, "_grad_hook", lambda self, acc: (lambda g: None))],
        "probe without param grad norms": [(C, "queue_param_grads", lambda self, p: None)],
    }
    if args.device.startswith("cuda"):  # the default loss draws v on the CPU and copies it over
        variants["bare, cotangent drawn on device"] = ("bare", on_device)
        variants["probe, cotangent drawn on device"] = on_device
    best = {k: math.inf for k in variants}
    for _ in range(args.repeats):
        for label, patches in variants.items():
            memo.clear()
            arm = probe
            if patches is None:
                arm, patches = bare, []
            elif isinstance(patches, tuple):
                arm, patches = bare, patches[1]
            saved = [(o, a, getattr(o, a)) for o, a, _ in patches]
            try:
                for o, a, v in patches:
                    setattr(o, a, v)
                best[label] = min(best[label], timed(lambda: arm(model, make_inputs, args.batches), args.device))
            finally:
                for o, a, v in saved:
                    setattr(o, a, v)
    print(f"  ablations, interleaved, best of {args.repeats} (probe - bare = {best['probe'] - best['bare']:+.3f} s):")
    for label, t in best.items():
        gain = best["probe"] - t
        saves = f"  saves {gain:+.3f} s ({gain / best['bare']:+.1%} of bare)" if label.startswith("probe ") else ""
        print(f"    {label:<40} {t:8.3f} s  {t / best['bare']:.3f}x bare{saves}")

    prof = cProfile.Profile()
    prof.enable()
    probe(model, make_inputs, args.batches)
    sync(args.device)
    prof.disable()
    for sort in ("tottime", "cumulative"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(sort).print_stats(args.profile_top)
        lines = s.getvalue().splitlines()
        start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
        print(f"  cProfile, top {args.profile_top} by {sort} (cProfile inflates per-call Python cost):")
        for ln in lines[start:]:
            if ln.strip():
                print("    " + ln.replace(str(ROOT) + "/", "")[:160])


# --------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--batch", type=int, default=None, help="sequences per batch (default 4; 1 with --find-largest)")
    parser.add_argument("--seq", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--layers", type=int, default=12, help="n_layer (default 12: GPT-2 small)")
    parser.add_argument("--embd", type=int, default=768, help="n_embd (default 768)")
    parser.add_argument("--heads", type=int, default=None, help="n_head (default n_embd // 64)")
    parser.add_argument("--batches", type=int, default=None,
                        help="probe batches N per arm (default 3, the CLI's --probes default; 2 with --find-largest)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats R, best of R (default 3)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--malloc", choices=("default", "fixed", "both"), default="both",
                        help="memory arms under glibc's default malloc, a fixed mmap threshold, or both (default)")
    parser.add_argument("--skip-time", action="store_true", help="only the memory measurement")
    parser.add_argument("--skip-memory", action="store_true", help="only the time measurement")
    parser.add_argument("--profile", action="store_true", help="phase timers, ablations and cProfile of the probe arm")
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument("--find-largest", action="store_true", help="grow GPT-2 until the memory limit")
    parser.add_argument("--with-bare", action=argparse.BooleanOptionalAction, default=True,
                        help="--find-largest: also run the bare arm at each size, for the ratio (default on)")
    parser.add_argument("--limit-gib", type=float, default=24.0, help="--find-largest: memory limit (default 24)")
    parser.add_argument("--stop-gib", type=float, default=20.0,
                        help="--find-largest: do not start a size predicted above this (default 20)")
    parser.add_argument("--kill-gib", type=float, default=21.0,
                        help="--find-largest: kill a child whose RSS passes this (default 21)")
    parser.add_argument("--arm", choices=sorted(ARMS), help=argparse.SUPPRESS)  # internal: one arm, own process
    args = parser.parse_args()
    args.heads = args.heads or max(1, args.embd // 64)
    args.batch = args.batch or (1 if args.find_largest else 4)
    args.batches = args.batches or (2 if args.find_largest else 3)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.arm:
        arm_main(args)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus, "
          f"MemAvailable {_mem_available() / GIB:.1f} GiB"
          + (f", {torch.cuda.get_device_name(torch.device(args.device))}" if args.device.startswith("cuda") else ""))
    if args.find_largest:
        find_largest_main(args)
        return
    print(f"model: {describe(args)}")
    if not args.skip_memory:
        memory_main(args)  # first, while this process holds no model
    if not args.skip_time or args.profile:
        model, make_inputs = build(args)
        print(f"  {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters")
        if not args.skip_time:
            time_main(args, model, make_inputs)
        if args.profile:
            profile_main(args, model, make_inputs)


if __name__ == "__main__":
    main()
