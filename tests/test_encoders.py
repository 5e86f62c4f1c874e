"""Tests for mmlab.encoders: shapes, parameter counts, attention paths, padding, LogMel, MiniLM.

Every value check compares against an independent computation (a loop, torchaudio itself,
torch's own nn.MultiheadAttention, the fused kernel) in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlab.encoders import (CLS, PAD, UNK, AudioConvEncoder, AudioTransformer, BagOfWordsEncoder, ConvEncoder,
                            LogMel, MLPEncoder, MultiHeadSelfAttention, ResNetEncoder, TextTransformer, Tokenizer,
                            ViTEncoder)
from mmlab.data import SAMPLE_RATE
from mmlab.encoders.attention import attend
from mmlab.encoders.audio import log_mel

TEXTS = ["the digit seven", "a red circle", "a small blue square in the top left", "seven"]


def tiny_vit(**kw) -> ViTEncoder:
    args = dict(image_size=8, patch_size=4, dim=16, depth=2, heads=2, out_dim=8)
    return ViTEncoder(**{**args, **kw}).double().eval()


def tiny_audio_transformer() -> AudioTransformer:
    return AudioTransformer(n_mels=8, dim=16, depth=2, heads=2, out_dim=8, frame_stride=3,
                            n_fft=64, hop_length=32).double().eval()


def tiny_text(max_len: int = 16) -> TextTransformer:
    return TextTransformer(Tokenizer.from_texts(TEXTS), dim=16, depth=2, heads=2, out_dim=8,
                           max_len=max_len).double().eval()


# ---------------------------------------------------------------- shapes and validation
@pytest.mark.parametrize("make", [lambda: ConvEncoder(out_dim=10, width=4), lambda: ConvEncoder(10, 4, depth=6),
                                  lambda: MLPEncoder(3 * 32 * 32, hidden=8, depth=3, out_dim=10),
                                  lambda: ViTEncoder(dim=16, heads=2, out_dim=10)])
@pytest.mark.parametrize("B", [1, 3])
def test_vision_shapes(make, B):
    enc = make()
    out = enc(torch.rand(B, 3, 32, 32))
    assert out.shape == (B, enc.out_dim) == (B, 10)


def test_resnet_encoder_small_image_stem():
    enc = ResNetEncoder(out_dim=12)
    assert enc.net.conv1.stride == (1, 1) and enc.net.conv1.kernel_size == (3, 3)
    assert isinstance(enc.net.maxpool, nn.Identity)
    assert enc(torch.rand(2, 3, 32, 32)).shape == (2, 12)


def test_conv_encoder_parameter_count():
    w, d, c, o = 5, 4, 3, 7
    enc = ConvEncoder(out_dim=o, width=w, depth=d, in_channels=c)
    expected = (c * 9 * w + w) + (d - 1) * (w * 9 * w + w) + (w * o + o)
    assert sum(p.numel() for p in enc.parameters()) == expected
    assert sum(isinstance(m, nn.MaxPool2d) for m in enc.modules()) == 0


def test_vit_patch_embedding_parameter_count_and_patchify_loop():
    vit = tiny_vit(image_size=12, patch_size=3, in_channels=2)
    C, p, dim = 2, 3, 16
    assert sum(q.numel() for q in vit.patch_embedding.parameters()) == C * p * p * dim + dim
    x = torch.rand(2, C, 12, 12, dtype=torch.float64)
    patches = vit.patchify(x)  # (B, N, C·p²)
    g = 12 // p
    assert patches.shape == (2, g * g, C * p * p)
    for n in range(g * g):
        r, c = divmod(n, g)
        torch.testing.assert_close(patches[:, n], x[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(2, -1))
    torch.testing.assert_close(vit.forward_tokens(vit.embed(x)), vit(x))


@pytest.mark.parametrize("bad, err", [
    (torch.rand(3, 32, 32), ValueError),             # missing batch dim
    (torch.rand(2, 1, 32, 32), ValueError),          # wrong channels
    (torch.rand(2, 32, 32, 3), ValueError),          # channels-last
    (torch.randint(0, 255, (2, 3, 32, 32)), TypeError),  # integer image
    (torch.rand(0, 3, 32, 32), ValueError),          # empty batch
    ([[0.0]], TypeError),                            # not a tensor
])
def test_image_validation(bad, err):
    for enc in (ConvEncoder(width=4), ViTEncoder(dim=16, heads=2)):
        with pytest.raises(err, match="`x`"):
            enc(bad)


def test_vit_wrong_size_says_image_size():
    with pytest.raises(ValueError, match="image_size"):
        ViTEncoder(dim=16, heads=2)(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="divide"):
        ViTEncoder(image_size=32, patch_size=5)
    with pytest.raises(ValueError, match="divisible"):
        ViTEncoder(dim=10, heads=4)


def test_audio_shapes_and_validation():
    wave = torch.randn(2, 8000)
    encoders = (AudioConvEncoder(out_dim=6, n_mels=16, width=4), AudioTransformer(n_mels=16, dim=16, heads=2, out_dim=6))
    for enc in encoders:
        assert enc(wave).shape == (2, 6)
        with pytest.raises(ValueError, match=r"`wave`.*\(B, T\)"):
            enc(torch.randn(2, 1, 8000))
        with pytest.raises(TypeError, match="floating"):
            enc(torch.zeros(2, 8000, dtype=torch.int16))
        with pytest.raises(ValueError, match="empty"):
            enc(torch.zeros(0, 8000))
        with pytest.raises(ValueError, match="n_mels=16"):
            enc.forward_spectrogram(torch.randn(2, 40, 20))
    with pytest.raises(ValueError, match="max_frames"):
        AudioTransformer(n_mels=16, dim=16, heads=2, max_frames=20)(wave)


# ---------------------------------------------------------------- attention
def test_self_attention_matches_torch_multihead_attention():
    torch.manual_seed(1)
    mine = MultiHeadSelfAttention(12, 3).double()
    ref = nn.MultiheadAttention(12, 3, batch_first=True).double()
    with torch.no_grad():
        ref.in_proj_weight.copy_(mine.qkv.weight)
        ref.in_proj_bias.copy_(mine.qkv.bias)
        ref.out_proj.weight.copy_(mine.proj.weight)
        ref.out_proj.bias.copy_(mine.proj.bias)
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    keep = torch.tensor([[True] * 5, [True, True, True, False, False]])
    ref_out, ref_w = ref(x, x, x, key_padding_mask=~keep, need_weights=True, average_attn_weights=False)
    for explicit in (False, True):
        out, w = mine(x, keep, return_attention=explicit)
        torch.testing.assert_close(out, ref_out)
        if explicit:
            torch.testing.assert_close(w, ref_w)


def _brute_force_attention(q, k, v, mask=None):
    """softmax(q_i · k_j / √d) v_j, one query and one key at a time (no matrix products)."""
    B, H, Tq, d = q.shape
    out = torch.zeros(B, H, Tq, v.shape[-1], dtype=q.dtype)
    weights = torch.zeros(B, H, Tq, k.shape[2], dtype=q.dtype)
    for b in range(B):
        for h in range(H):
            for i in range(Tq):
                keys = [j for j in range(k.shape[2]) if mask is None or bool(mask[b, 0, i, j])]
                s = torch.stack([(q[b, h, i] * k[b, h, j]).sum() / math.sqrt(d) for j in keys])
                e = torch.exp(s - s.max())
                for w, j in zip(e / e.sum(), keys):
                    weights[b, h, i, j] = w
                    out[b, h, i] = out[b, h, i] + w * v[b, h, j]
    return out, weights


@pytest.mark.parametrize("masked", [False, True], ids=["no-mask", "mask"])
def test_attend_matches_a_brute_force_softmax_loop(masked):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, n, 4, generator=g, dtype=torch.float64, requires_grad=True)
               for n in (4, 5, 5))
    mask = None
    if masked:  # every query keeps at least one key; query 2 of sample 1 keeps only key 4
        mask = torch.rand(2, 1, 4, 5, generator=g) > 0.4
        mask[..., 0] = True
        mask[1, 0, 2] = torch.tensor([False, False, False, False, True])
    want, want_w = _brute_force_attention(q, k, v, mask)
    up = torch.randn(want.shape, generator=g, dtype=torch.float64)  # a random upstream gradient
    want_grads = torch.autograd.grad((want * up).sum(), (q, k, v))
    for need_weights in (True, False):
        out, w = attend(q, k, v, mask, need_weights=need_weights)
        torch.testing.assert_close(out, want)
        if need_weights:
            torch.testing.assert_close(w, want_w)
            if masked:
                assert bool((w[~mask.expand_as(w)] == 0).all())  # masked keys get weight exactly 0
        else:
            assert w is None  # the fused kernel returns no weights
        for got, ref in zip(torch.autograd.grad((out * up).sum(), (q, k, v)), want_grads):
            torch.testing.assert_close(got, ref)


def test_attend_explicit_weights_are_in_the_graph_and_dropout_spares_them():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64) for _ in range(3))
    _, w = attend(q, k, v, need_weights=True)
    torch.manual_seed(0)
    out, w_drop = attend(q, k, v, dropout_p=0.5, need_weights=True)
    torch.testing.assert_close(w_drop, w)  # the returned A is before dropout: rows sum to 1
    torch.manual_seed(0)
    kept = F.dropout(w, 0.5)  # the same draw, applied by hand
    torch.testing.assert_close(out, kept @ v)


def _encoders_and_inputs():
    torch.manual_seed(0)
    text = tiny_text()
    return [
        (tiny_vit(), torch.rand(3, 3, 8, 8, dtype=torch.float64), 1 + 4),
        (tiny_audio_transformer(), torch.randn(3, 700, dtype=torch.float64), 1 + math.ceil((1 + 700 // 32) / 3)),
        (text, TEXTS[:3], len(text.tokenizer.encode(TEXTS[:3])[0][0])),
    ]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["vit", "audio", "text"])
def test_fused_and_explicit_attention_agree(index):
    enc, x, T = _encoders_and_inputs()[index]
    fused = enc(x)
    feats, attentions = enc(x, return_attention=True)
    torch.testing.assert_close(feats, fused, rtol=1e-10, atol=1e-10)
    assert feats.shape == (3, enc.out_dim)
    assert len(attentions) == 2
    for a in attentions:
        assert a.shape == (3, 2, T, T)
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, T, dtype=torch.float64))
        assert bool((a >= 0).all())


def test_attention_is_in_the_autograd_graph_and_has_a_correct_gradient():
    vit = tiny_vit(depth=1)
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    feats, (attention,) = vit(x, return_attention=True)
    g, = torch.autograd.grad(feats[:, 0].sum(), attention)
    assert g.shape == attention.shape and bool(g.abs().sum() > 0)
    # gradient of features w.r.t. patch embeddings (the attribution hook), against finite differences
    e = vit.embed(x).detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: vit.forward_tokens(t, return_attention=True)[1][0], (e,))
    assert torch.autograd.gradcheck(lambda t: vit.forward_tokens(t), (e,))


def test_text_padding_keys_get_zero_attention():
    text = tiny_text()
    ids, mask = text.tokenizer.encode(["seven", TEXTS[2]])
    _, attentions = text(ids, return_attention=True)
    for a in attentions:
        assert bool((a[0, :, :, ~mask[0]] == 0).all())


# ---------------------------------------------------------------- text
def test_tokenizer_vocabulary_encode_decode():
    tok = Tokenizer.from_texts(["A b b", "b, c!", "c"], min_count=2)
    assert tok.vocab == ["<pad>", "<unk>", "<cls>", "b", "c"]
    assert (PAD, UNK, CLS) == (0, 1, 2)
    ids, mask = tok.encode(["b C a", "c"])
    assert ids.dtype == torch.int64 and mask.dtype == torch.bool
    assert ids.tolist() == [[CLS, 3, 4, UNK], [CLS, 4, PAD, PAD]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert tok.decode(ids) == ["b c <unk>", "c"]
    assert tok.tokens("b C a") == ["b", "c", "<unk>"]
    ids, mask = tok.encode(["b c b c b"], max_len=3)
    assert ids.tolist() == [[CLS, 3, 4]] and tok.tokens("b c b c b", max_len=3) == ["b", "c"]
    assert tok.encode(["b"], max_len=5, padding="max_len")[0].shape == (1, 5)


def test_tokenizer_validation():
    tok = Tokenizer.from_texts(TEXTS)
    with pytest.raises(TypeError, match=r"\[text\]"):
        tok.encode("a single string")
    with pytest.raises(TypeError, match="only str"):
        tok.encode(["ok", 3])
    with pytest.raises(ValueError, match="empty"):
        tok.encode([])
    with pytest.raises(ValueError, match="one of"):
        tok.encode(["a"], padding="left")


def test_text_transformer_padding_does_not_change_features():
    text = tiny_text(max_len=16)
    ref = torch.cat([text([t]) for t in TEXTS])  # each text alone: no padding
    batched = text(TEXTS)  # padded to the longest
    torch.testing.assert_close(batched, ref, rtol=1e-10, atol=1e-10)
    for L in (10, 16):
        ids, mask = text.tokenizer.encode(TEXTS, max_len=L, padding="max_len")
        torch.testing.assert_close(text(ids), ref, rtol=1e-10, atol=1e-10)
        feats, attentions = text(ids, return_attention=True)
        torch.testing.assert_close(feats, ref, rtol=1e-10, atol=1e-10)
        # the maps keep the input's width L on every device (no CPU-only trim of padding columns)
        assert all(a.shape == (len(TEXTS), 2, L, L) for a in attentions)


def test_text_transformer_ids_path_embed_hook_and_state():
    text = tiny_text()
    ids, mask = text.tokenizer.encode(TEXTS)
    torch.testing.assert_close(text.forward_embeddings(text.embed(ids), mask), text(TEXTS))
    with pytest.raises(TypeError, match="int64"):
        text(ids.float())
    with pytest.raises(ValueError, match="vocabulary|range"):
        text(ids + 1000)
    fresh = TextTransformer(Tokenizer(["<pad>", "<unk>", "<cls>"] + [f"w{i}" for i in range(len(text.tokenizer) - 3)]),
                            dim=16, depth=2, heads=2, out_dim=8, max_len=16).double()
    fresh.load_state_dict(text.state_dict())
    assert fresh.tokenizer.vocab == text.tokenizer.vocab
    torch.testing.assert_close(fresh.eval()(TEXTS), text(TEXTS))


def test_bag_of_words_is_the_mean_word_embedding():
    tok = Tokenizer.from_texts(TEXTS)
    bow = BagOfWordsEncoder(tok, out_dim=5).double()
    out = bow(TEXTS + [""])
    W = bow.embedding.weight
    for i, t in enumerate(TEXTS):
        rows = [W[tok.index[w]] for w in Tokenizer.split(t)]
        torch.testing.assert_close(out[i], torch.stack(rows).mean(0))
    torch.testing.assert_close(out[-1], torch.zeros(5, dtype=torch.float64))


def test_bag_of_words_leaves_unknown_words_out_of_the_mean():
    tok = Tokenizer.from_texts(TEXTS)
    bow = BagOfWordsEncoder(tok, out_dim=5).double()
    known = Tokenizer.split(TEXTS[0])
    with_unknown = " ".join(["zyzzyva"] + known + ["quux"])
    assert tok.encode([with_unknown])[0].eq(UNK).sum() == 2
    W = bow.embedding.weight
    expected = torch.stack([W[tok.index[w]] for w in known]).mean(0)
    torch.testing.assert_close(bow([with_unknown])[0], expected)
    torch.testing.assert_close(bow(["zyzzyva quux"])[0], torch.zeros(5, dtype=torch.float64))


# ---------------------------------------------------------------- audio
def test_logmel_matches_torchaudio_per_sample_and_batch():
    import torchaudio

    torch.manual_seed(3)
    wave = torch.randn(3, 4000, dtype=torch.float64)
    wave[1] *= 1e-3  # a quiet clip: its top_db floor must not depend on the loud ones
    wave[2, 2000:] = 0.0  # silence: the floor is hit
    lm = LogMel(sample_rate=16000, n_fft=400, hop_length=160, n_mels=20, top_db=80).double()
    batched = lm(wave)
    assert batched.shape == (3, 20, lm.num_frames(4000)) == (3, 20, 26)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=400, hop_length=160, n_mels=20,
                                               power=2.0).double()
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80)
    for i in range(3):
        ref = to_db(mel(wave[i]))  # (n_mels, frames), one clip at a time
        torch.testing.assert_close(batched[i], ref)
        torch.testing.assert_close(lm(wave[i:i + 1])[0], ref)
    assert float(batched[2].max() - batched[2].min()) == pytest.approx(80.0)
    assert [name for name, _ in lm.named_buffers()]  # window and filterbank follow .to(device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_mel_function_is_the_module_with_default_buffers(dtype):
    torch.manual_seed(4)
    wave = torch.randn(2, 3000, dtype=dtype)
    lm = LogMel().to(dtype)
    assert (lm.sample_rate, lm.n_mels) == (SAMPLE_RATE, 40)  # the encoders' settings
    torch.testing.assert_close(log_mel(wave), lm(wave), rtol=0, atol=0)
    small = LogMel(n_fft=128, hop_length=64, n_mels=12, top_db=None, f_min=50.0, f_max=6000.0)
    got = log_mel(wave, n_fft=128, hop_length=64, n_mels=12, top_db=None, f_min=50.0, f_max=6000.0)
    torch.testing.assert_close(got, small.to(dtype)(wave), rtol=0, atol=0)
    with pytest.raises(ValueError, match="n_fft"):
        log_mel(wave[:, :100])


def test_log_mel_tone_peaks_at_its_mel_bin():
    rate, f0, n_mels = 16_000, 1000.0, 64
    wave = torch.sin(2 * math.pi * f0 * torch.arange(rate) / rate)
    S = log_mel(wave[None], rate, n_mels=n_mels)[0]  # (n_mels, frames)
    mel = lambda f: 2595 * math.log10(1 + f / 700)  # HTK mel scale
    centres = np.linspace(mel(0), mel(rate / 2), n_mels + 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - mel(f0))))
    assert abs(int(S[:, 50].argmax()) - expected) <= 1


def test_audio_transformer_tokens_are_frame_groups():
    enc = tiny_audio_transformer()
    wave = torch.randn(2, 700, dtype=torch.float64)
    spec = enc.logmel(wave)  # (B, n_mels, F)
    tokens = enc.embed(spec)
    s, n_frames = enc.frame_stride, spec.shape[-1]
    std = (spec - spec.mean(dim=(1, 2), keepdim=True)) / (spec.std(dim=(1, 2), keepdim=True, unbiased=False) + 1e-5)
    assert tokens.shape == (2, math.ceil(n_frames / s), enc.dim)
    for i in range(tokens.shape[1]):
        frames = list(enc.token_frames(i + 1))
        block = torch.zeros(2, enc.n_mels, s, dtype=torch.float64)
        real = [f for f in frames if f < n_frames]
        block[:, :, : len(real)] = std[:, :, real]
        torch.testing.assert_close(tokens[:, i], enc.frame_embedding(block.reshape(2, -1)))
    torch.testing.assert_close(enc.forward_spectrogram(spec), enc(wave))


def test_audio_conv_encoder_spectrogram_path():
    enc = AudioConvEncoder(out_dim=4, n_mels=8, width=4, n_fft=64, hop_length=32).double()
    wave = torch.randn(2, 500, dtype=torch.float64)
    torch.testing.assert_close(enc.forward_spectrogram(enc.logmel(wave)), enc(wave))


# ---------------------------------------------------------------- frozen sentence encoder
@pytest.fixture(scope="module")
def sentence_encoder():
    from mmlab.encoders import SentenceEncoder

    return SentenceEncoder()


def test_sentence_encoder_offline_unit_norm_and_similarity(sentence_encoder):
    texts = ["the digit seven", "number seven", "a red circle"]
    z = sentence_encoder(texts)
    assert z.shape == (3, 384) and sentence_encoder.out_dim == 384
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(3))
    assert float(z[0] @ z[1]) > float(z[0] @ z[2])
    assert float(z[0] @ z[1]) > float(z[1] @ z[2])
    assert list(sentence_encoder.parameters()) == [] and len(sentence_encoder.state_dict()) == 0
    # the underlying model, run directly, agrees up to normalisation
    ref = sentence_encoder._model.encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(z, F.normalize(ref.float(), dim=-1), rtol=1e-4, atol=1e-5)
    assert sentence_encoder.double()(texts).dtype == torch.float64
    sentence_encoder.float()


def test_sentence_encoder_caches_per_string(sentence_encoder, monkeypatch):
    calls: list[list[str]] = []
    real = sentence_encoder._model.encode

    def counting(sentences, **kw):
        calls.append(list(sentences))
        return real(sentences, **kw)

    monkeypatch.setattr(sentence_encoder._model, "encode", counting)
    sentence_encoder.clear_cache()
    first = sentence_encoder(["alpha one", "beta two", "alpha one"])
    assert calls == [["alpha one", "beta two"]]
    second = sentence_encoder(["beta two", "alpha one"])
    assert len(calls) == 1  # served from the cache
    torch.testing.assert_close(second, first[[1, 0]])
    sentence_encoder(["beta two", "gamma three"])
    assert calls[-1] == ["gamma three"]


def test_sentence_encoder_hub_name_offline_raises_clear_error(monkeypatch):
    from mmlab.encoders import SentenceEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not installed.*allow_download=False"):
        SentenceEncoder("someone/not-a-bundled-model")
    with pytest.raises(ValueError, match="not installed.*HF_HUB_OFFLINE"):
        SentenceEncoder("someone/not-a-bundled-model", allow_download=True)


def test_sentence_encoder_without_network_fails_at_once_and_reads_only_the_cache(monkeypatch):
    import socket

    import sentence_transformers

    from mmlab.encoders import SentenceEncoder

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    probes, loads = [], []

    def no_network(address, timeout=None, *args, **kwargs):
        probes.append((address, timeout))
        raise OSError("Network is unreachable")

    def fake_model(path, device=None, local_files_only=False, **kwargs):
        loads.append(local_files_only)
        raise OSError(f"{path} is not in the cache")  # what the hub client says for a cache miss

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", fake_model)
    with pytest.raises(ValueError, match="not installed.*huggingface.co.*cannot be reached.*local Hugging Face cache"):
        SentenceEncoder("someone/not-a-bundled-model", allow_download=True)
    assert probes == [(("huggingface.co", 443), 3.0)]  # one bounded probe, no retries
    assert loads == [True]  # the hub client was told to use the local cache only


def test_sentence_encoder_rejects_non_list(sentence_encoder):
    with pytest.raises(TypeError, match=r"list of str"):
        sentence_encoder("just a string")
