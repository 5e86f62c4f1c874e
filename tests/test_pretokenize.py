"""`pretokenize`: ids padded to one length give the same features as the strings, and train."""

from __future__ import annotations

import pytest
import torch

from mmlab.data import MultimodalDataset
from mmlab.encoders import (PAD, BagOfWordsEncoder, MLPEncoder, TextTransformer, Tokenizer,
                            pretokenize)
from mmlab.model import ContrastiveModel
from mmlab.losses import ClipLoss
from mmlab.train import fit

TEXTS = ["a red circle", "a small blue square at the top left", "star", "green cross in the middle row",
         "a red star", "unseenword circle"]


def _dataset() -> MultimodalDataset:
    g = torch.Generator().manual_seed(0)
    return MultimodalDataset({"image": torch.randn(len(TEXTS), 8, generator=g), "text": list(TEXTS)},
                             label=torch.arange(len(TEXTS)))


@pytest.mark.parametrize("kind", ["transformer", "bag-of-words"])
def test_ids_give_the_same_features_as_strings(kind):
    tok = Tokenizer.from_texts(TEXTS[:-1])  # the last text has an unknown word
    torch.manual_seed(0)
    enc = (TextTransformer(tok, dim=16, depth=1, heads=2, out_dim=8) if kind == "transformer"
           else BagOfWordsEncoder(tok, out_dim=8)).eval()
    ds = pretokenize(_dataset(), enc)
    ids = ds.modalities_data["text"]
    longest = 1 + max(len(t.split()) for t in TEXTS)
    assert ids.dtype == torch.int64 and ids.shape == (len(TEXTS), longest)
    # every row is padded to the dataset's longest text, longer than most rows need
    assert (ids == PAD).sum() > 0
    for i in range(len(TEXTS)):
        from_ids = enc(ids[i:i + 1])  # (1, 8), padded
        from_str = enc([TEXTS[i]])  # (1, 8), unpadded
        torch.testing.assert_close(from_ids, from_str, rtol=1e-5, atol=1e-6)
    # the decoded ids are the tokenizer's view of the strings
    assert tok.decode(ids[:1]) == [" ".join(tok.tokens(TEXTS[0]))]


def test_keeps_labels_and_other_modalities_and_max_len():
    tok = Tokenizer.from_texts(TEXTS)
    ds = _dataset()
    out = pretokenize(ds, tok, max_len=3)
    assert out.modalities_data["text"].shape == (len(TEXTS), 3)
    assert torch.equal(out.label, ds.label)
    assert out.modalities_data["image"] is ds.modalities_data["image"]
    assert isinstance(ds.modalities_data["text"], list), "the input dataset must not change"
    enc = TextTransformer(tok, dim=16, depth=1, heads=2, out_dim=8, max_len=4)
    assert pretokenize(ds, enc).modalities_data["text"].shape[1] == 4  # the encoder's max_len


def test_a_pretokenized_dataset_trains_like_the_strings():
    tok = Tokenizer.from_texts(TEXTS)

    def model() -> ContrastiveModel:
        torch.manual_seed(0)
        return ContrastiveModel({"image": MLPEncoder(8, hidden=16, depth=1, out_dim=8),
                                 "text": BagOfWordsEncoder(tok, out_dim=8)}, None, ClipLoss())

    ds = _dataset()
    m_str, m_ids = model(), model()
    h_str = fit(m_str, ds, steps=5, batch_size=3, seed=0, progress=False)
    h_ids = fit(m_ids, pretokenize(ds, m_ids.encoders["text"]), steps=5, batch_size=3, seed=0, progress=False)
    torch.testing.assert_close(torch.tensor(h_ids.loss), torch.tensor(h_str.loss), rtol=1e-5, atol=1e-6)
    for p, q in zip(m_str.parameters(), m_ids.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_errors_name_the_argument():
    tok = Tokenizer.from_texts(TEXTS)
    ds = _dataset()
    with pytest.raises(TypeError, match="dataset"):
        pretokenize({"text": TEXTS}, tok)
    with pytest.raises(ValueError, match="caption"):
        pretokenize(ds, tok, modality="caption")
    with pytest.raises(TypeError, match="already tokenised"):
        pretokenize(pretokenize(ds, tok), tok)
    with pytest.raises(TypeError, match="encoder"):
        pretokenize(ds, MLPEncoder(8, hidden=4, depth=1, out_dim=4))
    with pytest.raises(ValueError, match="max_len"):
        pretokenize(ds, tok, max_len=1)
