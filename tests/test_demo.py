"""``loom demo``: its data, pipeline and DP-SGD step against plain references, and the whole run (--quick)."""

from __future__ import annotations

import csv
import gzip
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from loom._demo import DemoOptions, _data, _launch, _model, _pipeline, run_demo
from loom.data import DataLoader2


def test_bundled_digits_match_a_plain_csv_parse() -> None:
    images, labels = _data.load_digits()
    with gzip.open(_data.DIGITS_CSV, "rt") as f:
        rows = [[int(v) for v in row] for row in csv.reader(f)]
    assert len(rows) == 1797 == len(labels)
    assert images.shape == (1797, 8, 8)
    assert images.flatten(1).tolist() == [row[:-1] for row in rows]
    assert labels.tolist() == [row[-1] for row in rows]
    assert sorted(set(labels.tolist())) == list(range(10))


def test_split_is_deterministic_and_disjoint() -> None:
    _, labels = _data.load_digits()
    indexed = torch.arange(len(labels))
    (tr_a, _), (te_a, _) = _data.split(indexed, labels, 0.2, seed=0)
    (tr_b, _), (te_b, _) = _data.split(indexed, labels, 0.2, seed=0)
    assert torch.equal(tr_a, tr_b) and torch.equal(te_a, te_b)
    assert sorted(tr_a.tolist() + te_a.tolist()) == list(range(len(labels)))
    assert len(te_a) == round(0.2 * len(labels))
    with pytest.raises(ValueError, match=r"split: test_fraction must be in \(0, 1\), got 1.5"):
        _data.split(indexed, labels, 1.5, seed=0)


def test_pipeline_reads_back_every_sample_once(tmp_path: Path) -> None:
    images, labels = _data.load_digits()
    images, labels = images[:100], labels[:100]
    _data.write_shards(tmp_path, images, labels, num_shards=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"shard-000{i}.tar" for i in range(3)]
    loader = DataLoader2(_pipeline.build_pipeline(tmp_path, batch_size=1))
    loader.seed(0)
    got = sorted(
        (x.flatten().tolist(), int(y)) for batch_x, batch_y in loader for x, y in zip(batch_x, batch_y)
    )
    loader.shutdown()
    expected = sorted(
        ((((img.float() / 16 - 0.30) / 0.38).flatten().tolist()), int(lab))
        for img, lab in zip(images, labels)
    )
    assert len(got) == 100
    for (gx, gy), (ex, ey) in zip(got, expected):
        assert gy == ey
        assert torch.allclose(torch.tensor(gx), torch.tensor(ex))


def _loop_clipped_mean(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, clip: float
) -> dict[str, torch.Tensor]:
    """The reference: one backward pass per example, clip its whole gradient to norm <= clip, average."""
    total = {k: torch.zeros_like(p) for k, p in model.named_parameters()}
    for xi, yi in zip(x, y):
        model.zero_grad()
        F.cross_entropy(model(xi[None]), yi[None]).backward()
        grads = {k: p.grad.clone() for k, p in model.named_parameters()}  # type: ignore[union-attr]
        norm = torch.stack([g.norm() for g in grads.values()]).norm()
        for k, g in grads.items():
            total[k] += g * min(1.0, clip / (float(norm) + 1e-6))
    return {k: v / len(y) for k, v in total.items()}


def test_dp_sgd_step_without_noise_is_the_clipped_per_example_mean() -> None:
    torch.manual_seed(0)
    model = _model.DigitsCNN().double()
    x, y = torch.randn(6, 1, 8, 8, dtype=torch.float64), torch.randint(10, (6,))
    expected = _loop_clipped_mean(model, x, y, clip=0.5)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    with torch.no_grad():
        loss_before = float(F.cross_entropy(model(x), y))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    gen = torch.Generator().manual_seed(0)
    psg = _model.per_sample_grads_fn(model)
    loss, diff = _model.dp_sgd_step(
        model,
        model,
        opt,
        psg,
        (x, y),
        clip=0.5,
        noise_multiplier=0.0,
        global_batch=6,
        noise_gen=gen,
        check=True,
    )
    assert diff is not None and diff < 1e-10
    assert loss == pytest.approx(loss_before)
    for k, p in model.named_parameters():
        torch.testing.assert_close(before[k] - p.detach(), expected[k], rtol=1e-9, atol=1e-10)


def test_dp_sgd_noise_has_the_global_batch_scale() -> None:
    torch.manual_seed(0)
    model = _model.DigitsCNN()
    x, y = torch.randn(4, 1, 8, 8), torch.randint(10, (4,))
    clean, noisy = (torch.optim.SGD(model.parameters(), lr=0.0) for _ in range(2))
    _model.dp_sgd_step(
        model,
        model,
        clean,
        _model.per_sample_grads_fn(model),
        (x, y),
        clip=1.0,
        noise_multiplier=0.0,
        global_batch=8,
        noise_gen=torch.Generator(),
    )
    g0 = torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]
    gen = torch.Generator().manual_seed(3)
    _model.dp_sgd_step(
        model,
        model,
        noisy,
        _model.per_sample_grads_fn(model),
        (x, y),
        clip=1.0,
        noise_multiplier=2.0,
        global_batch=8,
        noise_gen=gen,
    )
    g1 = torch.cat([p.grad.flatten() for p in model.parameters()])  # type: ignore[union-attr]
    ref = torch.Generator().manual_seed(3)
    expected = (
        torch.cat([torch.randn(p.shape, generator=ref).flatten() for p in model.parameters()]) * 2.0 / 8
    )
    torch.testing.assert_close(g1 - g0, expected, rtol=1e-5, atol=1e-6)


def test_bad_options_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_demo(DemoOptions(epochs=0)) == 2
    assert "loom demo: --epochs must be >= 1, got 0" in capsys.readouterr().err
    assert run_demo(DemoOptions(processes=3)) == 2
    assert "--processes must be 1 or 2, got 3" in capsys.readouterr().err


@pytest.mark.multiprocess
def test_a_failing_rank_does_not_hang_the_launcher(tmp_path: Path) -> None:
    began = time.monotonic()
    codes = _launch.launch(tmp_path / "missing.json", world_size=2, timeout=60)
    assert all(code != 0 for code in codes)
    assert time.monotonic() - began < 50


@pytest.mark.multiprocess
@pytest.mark.slow
def test_quick_demo_trains_resumes_and_plots(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "loom.cli", "demo", "--quick", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    accuracy = float(re.search(r"test accuracy: ([\d.]+)% on (\d+) held-out", out).group(1)) / 100  # type: ignore[union-attr]
    assert accuracy > 0.3, out  # chance is 0.1
    assert re.search(r"resume check: batches after resume identical .*: OK; weights .*: OK", out), out
    assert re.search(r"max \|diff\| [\d.e+-]+\): OK", out), out
    png = tmp_path / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "all checks passed" in out
