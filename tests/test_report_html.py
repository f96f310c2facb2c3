"""--format html: a self-contained page with the per-layer picture, the findings and their fixes;
checked as markup here and as a rendered page in headless Chromium where it is installed."""
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from torch import nn

import gradcheck_tool
from gradcheck_tool.findings import Report
from gradcheck_tool.report import RENDERERS

ROOT = Path(__file__).resolve().parent.parent


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Collect:
    collected = Collect()
    collected.feed(page)
    return collected


@pytest.fixture(scope="module")
def tower_report():
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(32, 32), nn.Sigmoid())])
    return gradcheck_tool.scan(model, torch.randn(16, 32))


def test_page_holds_the_picture_the_findings_and_nothing_external(tower_report):
    page = RENDERERS["html"](tower_report)
    parsed = parse(page)
    layers = tower_report.probes[0].record.layers
    circles = [attrs for tag, attrs in parsed.tags if tag == "circle"]
    assert len(circles) == 2 * len(layers)  # activation RMS and gradient norm, every layer (all finite, > 0)
    flagged = [attrs for tag, attrs in parsed.tags if tag == "rect" and attrs.get("class") == "flagged"]
    finding = tower_report.findings[0]
    assert finding.code == "GH102" and len(flagged) == 1 and finding.module in page
    # Log scale: the gradient's points span the decades the probe measured, top = largest.
    grads = [layer.grad_norm for layer in layers]
    ys = [float(c["cy"]) for c in circles[len(layers):]]  # the gradient series follows the activation one
    scale = (ys[0] - ys[-1]) / (torch.tensor(grads[-1]).log10() - torch.tensor(grads[0]).log10()).item()
    for y, g in zip(ys, grads):  # the same pixels per decade everywhere: a log axis
        assert ys[0] - y == pytest.approx(scale * (torch.tensor(g).log10() - torch.tensor(grads[0]).log10()).item(),
                                          abs=0.2)
    text = " ".join(parsed.text)
    assert "vanishing-gradients" in text and finding.fix.message in text
    for tag, attrs in parsed.tags:  # self-contained: no script, no fetched resource
        assert tag not in ("script", "link", "img", "iframe")
        assert not any(str(v).startswith(("http:", "https:", "//")) for k, v in attrs.items() if k != "xmlns")


def test_a_report_without_probes_renders():
    page = RENDERERS["html"](Report(files=2))
    assert "No findings." in page and "<svg" not in page and page.startswith("<!DOCTYPE html>")


def test_cli_writes_html(tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", "--static-only", "--format", "html",
                           "-o", str(out), str(ROOT / "examples" / "train_rnn.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_chromium_renders_it(tmp_path):
    out = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "gradcheck_tool", "scan", "--format", "html", "-o", str(out),
                           str(ROOT / "examples" / "deep_sigmoid.py")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # GH102 is an error
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    rendered = parse(dom.stdout)
    assert sum(1 for tag, _ in rendered.tags if tag == "circle") == 2 * 21  # 10 x (Linear, Sigmoid) + head
    assert any(tag == "rect" and attrs.get("class") == "flagged" for tag, attrs in rendered.tags)
    assert "GH102" in dom.stdout and "kaiming_normal_" in dom.stdout
    shot = tmp_path / "report.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", out.as_uri()], capture_output=True, timeout=120)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000  # a page with a chart, not a blank one
