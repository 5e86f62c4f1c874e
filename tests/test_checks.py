"""`mmlab._checks.check_finite`: the one-reduction fast path agrees with the element-wise scan."""

from __future__ import annotations

import pytest
import torch

from mmlab._checks import check_finite, check_finite_if_cheap, values_are_cheap


def _scan_says_finite(x: torch.Tensor) -> bool:
    return all(torch.isfinite(v).item() for v in x.flatten())  # element by element


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("case", ["normal", "nan", "inf", "-inf", "inf and -inf", "overflowing sum"])
def test_fast_path_agrees_with_an_element_wise_scan(dtype, case):
    big = torch.finfo(dtype).max
    x = torch.randn(7, 5, generator=torch.Generator().manual_seed(0)).to(dtype)
    if case == "nan":
        x[3, 1] = float("nan")
    elif case == "inf":
        x[0, 0] = float("inf")
    elif case == "-inf":
        x[6, 4] = float("-inf")
    elif case == "inf and -inf":  # the sum is NaN
        x[0, 0], x[1, 1] = float("inf"), float("-inf")
    elif case == "overflowing sum":  # every value finite, their sum is not (bfloat16 too, in float32)
        x[:] = big
        if dtype != torch.float16:  # float16 is summed in float32, where 35 × 65,504 is no overflow
            assert not torch.isfinite(x.sum(dtype=torch.float32 if dtype == torch.bfloat16 else dtype))
    if _scan_says_finite(x):
        assert check_finite("x", x) is x
    else:
        with pytest.raises(ValueError, match=r"`x` \(shape \(7, 5\)\) contains"):
            check_finite("x", x)


def test_counts_in_the_message_and_no_autograd_side_effects():
    x = torch.zeros(4, 3, requires_grad=True)
    y = x * 1.0
    assert check_finite("y", y) is y and x.grad is None
    bad = torch.tensor([[float("nan"), float("inf")], [float("nan"), 1.0]])
    with pytest.raises(ValueError, match="2 NaN and 1 Inf"):
        check_finite_if_cheap("bad", bad)


def test_values_are_cheap_on_the_cpu_only_outside_compile():
    x = torch.ones(2)
    assert values_are_cheap(x)
    seen = []

    def f(t: torch.Tensor) -> torch.Tensor:
        seen.append(values_are_cheap(t))
        return t + 1

    torch.compile(f, backend="eager")(x)  # traced: reading values would break the graph
    assert seen and seen[0] is False


def test_class_id_range_names_the_values_and_what_they_index():
    from mmlab._checks import check_class_ids
    from mmlab.metrics import zero_shot_accuracy

    y = torch.tensor([0, 2, 5])
    assert check_class_ids("y", y, 3, "x", n_classes=6, classes_in="6 rows") is y
    with pytest.raises(ValueError, match=r"class ids in \[0, 5\) to index the 5 rows; got values in \[0, 5\]"):
        check_class_ids("y", y, 3, "x", n_classes=5, classes_in="5 rows")
    x, e = torch.randn(3, 4), torch.randn(4, 4)
    with pytest.raises(ValueError, match=r"4 rows of `class_embeddings`; got values in \[0, 5\]"):
        zero_shot_accuracy(x, e, y)
    # zero-shot accuracy is top-1 accuracy of the cosine scores, checked by a loop
    y_ok = torch.tensor([0, 3, 1])
    cos = torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(e, dim=-1).T
    expected = sum(int(cos[i].argmax()) == int(y_ok[i]) for i in range(3)) / 3
    assert zero_shot_accuracy(x, e, y_ok) == pytest.approx(expected)
