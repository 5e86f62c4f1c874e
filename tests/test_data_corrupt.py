"""Corruptions: Gaussian pixel noise, white noise at a given SNR, missing-row masks."""

from __future__ import annotations

import math

import pytest
import torch

from mmlab.data import gaussian_noise, missing_mask, noise_at_snr


def test_gaussian_noise_statistics_clipping_and_determinism():
    x = torch.full((8, 3, 16, 16), 0.5)
    out = gaussian_noise(x, 0.1, generator=torch.Generator().manual_seed(0), clip=None)
    eps = (out - x) / 0.1  # ~ N(0, 1), 6144 draws
    n = eps.numel()
    assert abs(float(eps.mean())) < 5 / math.sqrt(n)
    assert abs(float(eps.var()) - 1.0) < 5 * math.sqrt(2 / n)
    # the same draws as torch.randn from a generator in the same state, then clipped to [0, 1]
    ref = (x + 2.0 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    torch.testing.assert_close(gaussian_noise(x, 2.0, generator=torch.Generator().manual_seed(3)), ref, rtol=0, atol=0)
    big = gaussian_noise(x, 2.0, generator=torch.Generator().manual_seed(3))
    assert float(big.min()) == 0.0 and float(big.max()) == 1.0  # σ = 2: many pixels clip at both ends
    lo_hi = gaussian_noise(x, 2.0, generator=torch.Generator().manual_seed(3), clip=(0.25, 0.75))
    assert float(lo_hi.min()) == 0.25 and float(lo_hi.max()) == 0.75
    # σ = 0 is the identity (inside the range); one image (C, H, W) works; float64 stays float64
    torch.testing.assert_close(gaussian_noise(x, 0.0), x)
    one = gaussian_noise(x[0].double(), 0.3, generator=torch.Generator().manual_seed(1))
    assert one.shape == (3, 16, 16) and one.dtype == torch.float64
    a = gaussian_noise(x, 0.3, generator=torch.Generator().manual_seed(7))
    b = gaussian_noise(x, 0.3, generator=torch.Generator().manual_seed(7))
    c = gaussian_noise(x, 0.3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("snr_db", [-10.0, 0.0, 6.0, 20.0])
def test_noise_at_snr_measured_snr_matches(snr_db):
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16_000, dtype=torch.float64) / 16_000
    amp = torch.tensor([0.05, 0.3, 1.0])[:, None].double()  # three clips with different loudness
    wave = amp * torch.sin(2 * math.pi * 440 * t)  # (3, T); P_s = amp² / 2
    noisy = noise_at_snr(wave, snr_db, generator=g)
    noise = noisy - wave
    p_signal = amp[:, 0] ** 2 / 2  # closed form of mean(sin²) over whole periods
    p_noise = noise.pow(2).mean(1)
    measured = 10 * torch.log10(p_signal / p_noise)  # (3,)
    # P_n estimated from T samples has relative sd √(2/T): in dB, sd = 10/ln10 · √(2/T) ≈ 0.049 dB
    tol = 5 * 10 / math.log(10) * math.sqrt(2 / wave.shape[1])
    assert torch.all((measured - snr_db).abs() < tol), (measured, snr_db)
    assert abs(float(noise.mean(1).abs().max())) < 5 * math.sqrt(float(p_noise.max()) / wave.shape[1])


def test_noise_at_snr_shapes_determinism_and_silence():
    g = torch.Generator().manual_seed(2)
    wave = torch.randn(4, 800, generator=g)
    ref_power = wave.pow(2).mean(1, keepdim=True)
    ref = wave + (ref_power / 10 ** (3 / 10)).sqrt() * torch.randn(wave.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(noise_at_snr(wave, 3, generator=torch.Generator().manual_seed(5)), ref, rtol=0, atol=0)
    one = noise_at_snr(wave[0], 3, generator=torch.Generator().manual_seed(5))  # a single clip (T,)
    torch.testing.assert_close(one, ref[0], rtol=0, atol=0)
    silent = torch.zeros(2, 100)
    assert torch.equal(noise_at_snr(silent, 0.0), silent)


def test_missing_mask_counts_nesting_and_determinism():
    for n, f in [(10, 0.0), (10, 1.0), (10, 0.3), (7, 0.5), (101, 0.25)]:
        m = missing_mask(n, f, generator=torch.Generator().manual_seed(0))
        assert m.dtype == torch.bool and m.shape == (n,) and int(m.sum()) == int(round(f * n))
    masks = [missing_mask(50, f, generator=torch.Generator().manual_seed(4)) for f in (0.1, 0.4, 0.8)]
    assert bool((masks[0] <= masks[1]).all() and (masks[1] <= masks[2]).all())  # nested
    # the missing rows are the first round(f·n) entries of randperm with the same generator state
    order = torch.randperm(50, generator=torch.Generator().manual_seed(4))
    assert set(masks[1].nonzero().flatten().tolist()) == set(order[:20].tolist())
    assert not torch.equal(missing_mask(50, 0.4, generator=torch.Generator().manual_seed(5)), masks[1])


def test_corrupt_errors_name_the_argument():
    x = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="`sigma`"):
        gaussian_noise(x, -0.1)
    with pytest.raises(ValueError, match="`sigma`"):
        gaussian_noise(x, float("nan"))
    with pytest.raises(ValueError, match="`x`"):
        gaussian_noise(torch.rand(3, 4), 0.1)
    with pytest.raises(TypeError, match="`x`"):
        gaussian_noise(x.long(), 0.1)
    with pytest.raises(ValueError, match="`clip`"):
        gaussian_noise(x, 0.1, clip=(1, 0))
    with pytest.raises(TypeError, match="`generator`"):
        gaussian_noise(x, 0.1, generator=0)
    with pytest.raises(ValueError, match="`x`"):
        gaussian_noise(torch.full((1, 3, 2, 2), float("nan")), 0.1)
    with pytest.raises(ValueError, match="`snr_db`"):
        noise_at_snr(torch.randn(2, 10), float("inf"))
    with pytest.raises(ValueError, match="`snr_db`"):
        noise_at_snr(torch.randn(2, 10), "10")
    with pytest.raises(ValueError, match="`wave`"):
        noise_at_snr(torch.randn(2, 1, 10), 0.0)
    with pytest.raises(ValueError, match="`wave`"):
        noise_at_snr(torch.zeros(0, 10), 0.0)
    with pytest.raises(ValueError, match="`fraction`"):
        missing_mask(10, 1.5)
    with pytest.raises(ValueError, match="`n`"):
        missing_mask(0, 0.5)
