"""mmlab.train.memory.peak_memory_bytes against sizes computed by hand (numel × element size)."""

from __future__ import annotations

import pytest
import torch

from mmlab.losses import info_nce
from mmlab.train.memory import MIB, peak_memory_bytes

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _round(n: int, device: str) -> int:
    """The CUDA caching allocator hands out blocks in multiples of 512 bytes."""
    return n if device == "cpu" else -(-n // 512) * 512


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_tensor(device: str, dtype: torch.dtype) -> None:
    keep = []
    peak = peak_memory_bytes(lambda: keep.append(torch.empty(1000, 300, dtype=dtype, device=device)), device)
    assert peak == _round(1000 * 300 * dtype.itemsize, device)


@pytest.mark.parametrize("device", DEVICES)
def test_peak_is_the_maximum_of_the_running_sum(device: str) -> None:
    def work() -> None:
        a = torch.empty(1000, 1000, device=device)   # 4 MB live
        b = torch.empty(500, 1000, device=device)    # 6 MB live: the peak
        del a                                        # 2 MB live
        c = torch.empty(250, 1000, device=device)    # 3 MB live
        del b, c
    assert peak_memory_bytes(work, device) == _round(4_000_000, device) + _round(2_000_000, device)


@pytest.mark.parametrize("device", DEVICES)
def test_memory_held_before_the_call_is_not_counted(device: str) -> None:
    old = [torch.ones(1000, 1000, device=device)]
    assert peak_memory_bytes(lambda: old.pop(), device) == 0      # a free only: nothing added
    x = torch.ones(256, 256, device=device)
    assert peak_memory_bytes(lambda: x.mul_(x), device) == 0       # in place: nothing added


@pytest.mark.parametrize("device", DEVICES)
def test_matmul_and_backward(device: str) -> None:
    n, d = 300, 40
    a = torch.randn(n, d, device=device)
    peak = peak_memory_bytes(lambda: a @ a.T, device)
    assert peak == _round(n * n * 4, device)  # the (n, n) result
    w = torch.randn(d, d, device=device, requires_grad=True)
    w.grad = torch.zeros_like(w)               # so backward accumulates in place
    peak = peak_memory_bytes(lambda: (a @ w).sum().backward(), device)
    # forward: the (n, d) product and the 0-d sum; backward: the (n, d) ones-gradient of the sum
    # and the (d, d) gradient of w (accumulated into w.grad) at most, all at once
    assert _round(n * d * 4, device) <= peak <= 2 * _round(n * d * 4, device) + 2 * _round(d * d * 4, device) + 2048


def test_full_loss_grows_like_b_squared_and_chunked_like_b() -> None:
    """Doubling B multiplies the full loss's peak by about 4 and the chunked one's by exactly 2."""
    def peak(n: int, k: int | None) -> int:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(n, 16, generator=g).requires_grad_()
        b = torch.randn(n, 16, generator=g).requires_grad_()
        return peak_memory_bytes(lambda: info_nce(a, b, 0.1, chunk_size=k).loss.backward())
    full = peak(512, None), peak(1024, None)
    chunked = peak(512, 64), peak(1024, 64)
    assert 3.7 < full[1] / full[0] < 4.1
    assert 1.95 < chunked[1] / chunked[0] < 2.05
    assert full[1] >= 2 * 1024 * 1024 * 4  # at least two (B, B) float32 matrices live at once
    assert MIB == 2 ** 20


def test_bad_device() -> None:
    with pytest.raises(ValueError, match="device"):
        peak_memory_bytes(lambda: None, "meta")
