"""Tests for `mmlab.recipes`: the reference tri-modal model, checked against its parts.

Fast tests build the model on a tiny synthetic dataset and compare it with independent
computations: parameter counts from the layer formulas, the loss against a brute-force CLIP
loss over the three pairs (values and gradients, float64). The slow test is the issue's
acceptance criterion on the real `digits` data.
"""

from __future__ import annotations

import re
import time

import pytest
import torch
import torch.nn.functional as F

from mmlab.data import MultimodalDataset
from mmlab.encoders import (AudioConvEncoder, BagOfWordsEncoder, ConvEncoder, SentenceEncoder,
                            TextTransformer)
from mmlab.model import ContrastiveModel
from mmlab.recipes import TriModalConfig, trimodal_model

TEXTS = ["zero", "the digit one", "two", "number three", "a handwritten four", "5"]
N = len(TEXTS)
T_AUDIO = 1600  # 0.1 s at 16 kHz: enough frames for the 3 stride-2 convs
SMALL = dict(embed_dim=5, image_width=4, audio_width=3, hidden=6)


def tiny_dataset(modalities=("image", "audio", "text"), channels: int = 3) -> MultimodalDataset:
    g = torch.Generator().manual_seed(1)
    data = {"image": torch.rand(N, channels, 16, 16, generator=g),
            "audio": 0.1 * torch.randn(N, T_AUDIO, generator=g),
            "text": list(TEXTS)}
    return MultimodalDataset({m: data[m] for m in modalities}, label=torch.arange(N))


def conv_params(c_in: int, width: int, out_dim: int, depth: int = 3) -> int:
    """3x3 convs with bias, then a linear layer: Σ (9·c_in·w + w) + w·out + out."""
    total, c = 0, c_in
    for _ in range(depth):
        total += 9 * c * width + width
        c = width
    return total + width * out_dim + out_dim


def vocab_size(texts) -> int:
    """3 specials + the distinct lowercase alphanumeric words (an independent split)."""
    return 3 + len({w for t in texts for w in re.findall(r"[a-z0-9]+", t.lower())})


def n_params(module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------- building

@pytest.mark.parametrize("text", ["bag-of-words", "transformer"])
def test_model_is_made_of_the_reference_parts(text):
    cfg = TriModalConfig(text=text, **SMALL)
    model = trimodal_model(tiny_dataset(), cfg)
    assert isinstance(model, ContrastiveModel)
    assert model.modalities == ["image", "audio", "text"]
    assert isinstance(model.encoders["image"], ConvEncoder)
    assert isinstance(model.encoders["audio"], AudioConvEncoder)
    assert isinstance(model.encoders["text"], BagOfWordsEncoder if text == "bag-of-words" else TextTransformer)
    assert model.encoders["text"].tokenizer.vocab_size == vocab_size(TEXTS)
    assert sorted(model.pairs) == sorted([("image", "audio"), ("image", "text"), ("audio", "text")])
    assert model.loss.normalize is False
    assert model.temperature == pytest.approx(0.07)
    for m in model.modalities:
        assert model.heads[m].kind == "linear" and model.heads[m].out_dim == 5


def test_parameter_count_bag_of_words_matches_the_formula():
    cfg = TriModalConfig(text="bag-of-words", **SMALL)
    model = trimodal_model(tiny_dataset(), cfg)
    h, d = cfg.hidden, cfg.embed_dim
    expected = (conv_params(3, cfg.image_width, h)        # image ConvEncoder
                + conv_params(1, cfg.audio_width, h)      # audio ConvEncoder on the log-mel (no LogMel params)
                + vocab_size(TEXTS) * h                   # bag-of-words embedding table
                + 3 * (h * d + d)                         # three linear heads
                + 1)                                      # logit_scale
    assert n_params(model) == expected


def test_parameter_count_transformer_is_the_sum_of_its_parts():
    cfg = TriModalConfig(text="transformer", **SMALL)
    model = trimodal_model(tiny_dataset(), cfg)
    h, d = cfg.hidden, cfg.embed_dim
    text_alone = TextTransformer(model.encoders["text"].tokenizer, out_dim=h)
    expected = conv_params(3, cfg.image_width, h) + conv_params(1, cfg.audio_width, h) + n_params(text_alone) \
        + 3 * (h * d + d) + 1
    assert n_params(model) == expected


def test_sentence_text_is_frozen_and_only_its_head_trains():
    cfg = TriModalConfig(text="sentence", **SMALL)
    model = trimodal_model(tiny_dataset(), cfg)
    assert isinstance(model.encoders["text"], SentenceEncoder)
    width = model.encoders["text"].out_dim  # 384 for MiniLM
    h, d = cfg.hidden, cfg.embed_dim
    assert model.heads["text"].in_dim == width
    expected = conv_params(3, cfg.image_width, h) + conv_params(1, cfg.audio_width, h) \
        + 2 * (h * d + d) + (width * d + d) + 1
    assert n_params(model) == n_params(model, trainable_only=True) == expected
    out = model(tiny_dataset().batch(torch.arange(N)))
    out.loss.backward()
    assert model.heads["text"].net.weight.grad is not None


def test_anchor_pairs_and_frozen_temperature():
    cfg = TriModalConfig(pairs="anchor:image", learnable_temperature=False, init_temperature=0.2, **SMALL)
    model = trimodal_model(tiny_dataset(), cfg)
    assert model.pairs == [("image", "audio"), ("image", "text")]
    assert not model.loss.logit_scale.requires_grad
    assert model.temperature == pytest.approx(0.2)
    out = model(tiny_dataset().batch(torch.arange(N)))
    assert set(out.terms) == {"image-audio", "image-text"}
    listed = trimodal_model(tiny_dataset(), TriModalConfig(pairs=[("audio", "text")], **SMALL))
    assert listed.pairs == [("audio", "text")]


# ---------------------------------------------------------------- one step, against brute force

def clip_brute_force(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """½[CE(S/τ, I) + CE(Sᵀ/τ, I)] on unit vectors, with explicit loops over rows and columns."""
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        row = torch.stack([a[i] @ b[j] for j in range(n)]) / temperature
        col = torch.stack([b[i] @ a[j] for j in range(n)]) / temperature
        total = total - 0.5 * ((row[i] - torch.logsumexp(row, 0)) + (col[i] - torch.logsumexp(col, 0)))
    return total / n


@pytest.mark.parametrize("text", ["bag-of-words", "transformer"])
def test_forward_backward_matches_brute_force_loss_over_three_pairs(text):
    ds = tiny_dataset()
    model = trimodal_model(ds, TriModalConfig(text=text, init_temperature=0.5, **SMALL)).double()
    batch = ds.batch(torch.arange(N))
    batch = {**batch, "image": batch["image"].double(), "audio": batch["audio"].double()}

    out = model(batch)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(out.loss, params, allow_unused=True)

    # independent path: each encoder and head by hand, normalise, brute-force CLIP per pair, mean
    z = {m: F.normalize(model.heads[m].net(model.encoders[m](batch[m])), dim=-1) for m in model.modalities}
    tau = torch.exp(-model.loss.logit_scale)
    pairs = [("image", "audio"), ("image", "text"), ("audio", "text")]
    expected_terms = {f"{a}-{b}": clip_brute_force(z[a], z[b], tau) for a, b in pairs}
    expected = sum(expected_terms.values()) / 3
    expected_grads = torch.autograd.grad(expected, params, allow_unused=True)

    assert out.loss.dtype == torch.float64
    torch.testing.assert_close(out.loss, expected)
    for k, v in expected_terms.items():
        torch.testing.assert_close(out.terms[k], v)
    for p, g, ge in zip(params, grads, expected_grads):
        assert g is not None, f"no gradient reaches a parameter of shape {tuple(p.shape)}"
        torch.testing.assert_close(g, ge)
    i_scale = next(i for i, p in enumerate(params) if p is model.loss.logit_scale)
    assert grads[i_scale].abs() > 0  # τ trains


def test_one_fit_step_changes_every_trainable_encoder():
    from mmlab.train import fit

    ds = tiny_dataset()
    model = trimodal_model(ds, TriModalConfig(**SMALL))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = fit(model, ds, steps=1, batch_size=N, device="cpu", progress=False)
    assert len(history.loss) == 1
    assert set(history.terms[0]) == {"image-audio", "image-text", "audio-text"}
    changed = {".".join(n.split(".")[:2]) for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"encoders.image", "encoders.audio", "encoders.text", "heads.image", "heads.audio",
                       "heads.text", "loss.logit_scale"}


# ---------------------------------------------------------------- errors

def test_config_errors_name_the_option():
    with pytest.raises(ValueError, match=r"`text`.*'bag-of-words'.*'transformer'.*'sentence'.*'bert'"):
        TriModalConfig(text="bert")
    with pytest.raises(ValueError, match="`embed_dim`"):
        TriModalConfig(embed_dim=0)
    with pytest.raises(TypeError, match="`hidden`"):
        TriModalConfig(hidden=12.5)
    with pytest.raises(ValueError, match="`init_temperature`"):
        TriModalConfig(init_temperature=0.0)
    with pytest.raises(TypeError, match="`learnable_temperature`"):
        TriModalConfig(learnable_temperature="yes")
    with pytest.raises(ValueError, match="`pairs`.*'depth'"):
        TriModalConfig(pairs="anchor:depth")
    with pytest.raises(ValueError, match="`pairs`"):
        TriModalConfig(pairs=[("image", "image")])


def test_data_errors_name_the_argument_and_the_fix():
    with pytest.raises(ValueError, match=r"`train_data`.*missing \['audio'\].*audio=True"):
        trimodal_model(tiny_dataset(("image", "text")))
    with pytest.raises(ValueError, match=r"missing \['image', 'text'\]"):
        trimodal_model(tiny_dataset(("audio",)))
    with pytest.raises(TypeError, match="`train_data`.*MultimodalDataset.*dict"):
        trimodal_model({"image": torch.rand(2, 3, 8, 8)})
    with pytest.raises(ValueError, match=r"`train_data` images.*\(N, 3, H, W\).*\(1, 1, 16, 16\)"):
        trimodal_model(tiny_dataset(channels=1))
    with pytest.raises(TypeError, match="`config`.*TriModalConfig.*dict"):
        trimodal_model(tiny_dataset(), {"text": "transformer"})
    wordless = MultimodalDataset({"image": torch.rand(2, 3, 16, 16), "audio": torch.randn(2, T_AUDIO),
                                  "text": ["!!", "..."]})
    with pytest.raises(ValueError, match="no words"):
        trimodal_model(wordless)


# ---------------------------------------------------------------- the acceptance criterion

ACCEPT_STEPS, ACCEPT_BATCH, ACCEPT_LR = 400, 128, 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_acceptance_image_to_text_class_level_r1(seed):
    """Issue: "A tri-modal model (audio, image, text) trained with `fit` on the `digits` dataset reaches
    R@1 ≥ 0.9 for image→text at the class level within 2 minutes on 2 CPU cores".

    Fixed steps (not a timed test); the CPU time is printed (quiet 2-core wall ≈ CPU s / 2).
    Evaluated on the test split, whose voices are never heard in training. Three seeds: with 300
    steps and one seed (until session 9) seed 0 reached 0.86 on another machine of the same kind
    (seeds 1 and 2: 0.96, 0.94); with 400 steps seeds 0 to 2 reached 0.958, 0.969 and 0.944.
    """
    from mmlab.data import load
    from mmlab.metrics import retrieval_report
    from mmlab.train import fit

    train, test = load("digits", split="train"), load("digits", split="test")
    torch.manual_seed(seed)
    model = trimodal_model(train, TriModalConfig())
    cpu0 = time.process_time()
    fit(model, train, steps=ACCEPT_STEPS, batch_size=ACCEPT_BATCH, lr=ACCEPT_LR, seed=seed,
        device="cpu", progress=False)
    cpu_s = time.process_time() - cpu0
    model.eval()
    with torch.no_grad():
        z = model.encode(test.batch(torch.arange(len(test))))
    labels = test.label
    r1 = {f"{a}→{b}": retrieval_report(z[a], z[b], ks=(1,), names=(a, b), labels_a=labels,
                                       labels_b=labels)[f"{a}→{b} R@1"]
          for a, b in (("image", "text"), ("audio", "image"), ("audio", "text"))}
    print(f"\ndigits acceptance, seed {seed}: {ACCEPT_STEPS} steps × batch {ACCEPT_BATCH}, CPU {cpu_s:.1f} s "
          f"(≈ {cpu_s / 2:.1f} s on 2 quiet cores); class-level R@1 {r1}")
    assert r1["image→text"] >= 0.9, r1
