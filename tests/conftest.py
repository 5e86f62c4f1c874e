"""Test set-up: no network, tiny sizes, deterministic seeds."""

import os

for _var, _val in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MMLAB_TINY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_var, _val)
# Exercise checks only print here (CI sets MMLAB_EXERCISES for the notebooks, not for these tests).
os.environ.pop("MMLAB_EXERCISES", None)

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
