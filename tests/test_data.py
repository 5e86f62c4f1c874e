"""Tests for mmlab.data: the three built-in datasets, the batch format and checksums
(the previews are tested in test_viz_preview.py).

Every check compares against an independent computation: closed-form areas and centroids of
the rendered shapes, a NumPy bilinear upsampling of the digits, brute-force mutual information
of the XOR joint, hashlib checksums, and per-sample indexing against batched indexing.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

import mmlab.data as D
from mmlab.data import digits as digits_mod
from mmlab.data import shapes as shapes_mod
from mmlab.data.speech import VOICES, compose_phrases
from mmlab.data.words import COLOURS, COLS, DIGIT_WORDS, ROWS, SHAPES, SIZES, VOCABULARY

N = 24


@pytest.fixture(scope="module")
def shapes_train():
    return D.load("shapes", "train", n=N, seed=0)


@pytest.fixture(scope="module")
def digits_test():
    return D.load("digits", "test", n=40, seed=0)


# ---- shapes, dtypes, registry ---------------------------------------------------------
def test_shapes_dataset_shapes_and_dtypes(shapes_train):
    ds = shapes_train
    assert len(ds) == N and ds.modalities == ("image", "audio", "text")
    b = ds.batch(torch.arange(N))
    assert b["image"].shape == (N, 3, 32, 32) and b["image"].dtype == torch.float32
    assert 0.0 <= float(b["image"].min()) and float(b["image"].max()) <= 1.0
    assert b["audio"].shape == (N, 32_000) and b["audio"].dtype == torch.float32
    assert float(b["audio"].abs().max()) <= 1.0
    assert isinstance(b["text"], list) and len(b["text"]) == N and all(isinstance(t, str) for t in b["text"])
    assert b["label"].dtype == torch.int64 and torch.equal(b["label"], b["factors"]["shape"])
    sizes = {"colour": len(COLOURS), "shape": len(SHAPES), "size": len(SIZES), "row": len(ROWS), "col": len(COLS)}
    for k, m in sizes.items():
        f = b["factors"][k]
        assert f.dtype == torch.int64 and f.shape == (N,) and 0 <= int(f.min()) and int(f.max()) < m
    bbox = b["bbox"]
    assert bbox.shape == (N, 4) and bbox.dtype == torch.float32
    assert bool((bbox[:, 0] < bbox[:, 2]).all() and (bbox[:, 1] < bbox[:, 3]).all())
    assert bool((bbox >= 0).all() and (bbox <= 32).all())
    assert ds.num_classes == 5 and ds.classes == list(SHAPES)
    assert torch.equal(b["index"], torch.arange(N))


def test_default_sizes_documented():
    assert shapes_mod.DEFAULT_N == {"train": 2000, "val": 500, "test": 500}


def test_digits_shapes_dtypes_and_split_sizes(digits_test):
    ds = digits_test
    b = ds.batch(torch.arange(len(ds)))
    assert b["image"].shape == (40, 3, 32, 32) and b["image"].dtype == torch.float32
    assert b["audio"].shape == (40, 16_000) and b["audio"].dtype == torch.float32
    assert ds.classes == list(DIGIT_WORDS) and ds.num_classes == 10
    labels = digits_mod.digit_images()[1].numpy()
    parts = [set(digits_mod.split_indices(labels, s).tolist()) for s in D.SPLITS]
    assert sum(map(len, parts)) == 1797 and len(set.union(*parts)) == 1797  # a partition
    for s, part in zip(D.SPLITS, parts):  # stratified: each class near 60/20/20
        frac = {"train": 0.6, "val": 0.2, "test": 0.2}[s]
        for c in range(10):
            n_c = int((labels == c).sum())
            assert abs(sum(labels[i] == c for i in part) - frac * n_c) <= 1


def test_digit_images_match_numpy_bilinear():
    from sklearn.datasets import load_digits

    raw = load_digits().images / 16.0  # (1797, 8, 8)
    # Independent bilinear upsampling (half-pixel centres, edge clamp) written with NumPy.
    src = np.clip((np.arange(32) + 0.5) / 4 - 0.5, 0, 7)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, 7)
    w = src - i0
    rows = raw[:, i0, :] * (1 - w)[None, :, None] + raw[:, i1, :] * w[None, :, None]  # (N, 32, 8)
    up = rows[:, :, i0] * (1 - w)[None, None, :] + rows[:, :, i1] * w[None, None, :]  # (N, 32, 32)
    images, labels = digits_mod.digit_images()
    assert torch.equal(labels, torch.from_numpy(load_digits().target).long())
    np.testing.assert_allclose(images[:, 0].double().numpy(), up, atol=1e-6)
    assert torch.equal(images[:, 0], images[:, 2])


def test_xor_shapes_and_relation():
    ds = D.load("xor", "train", bits=4, p=0.5, n=300, seed=3)
    b = ds.batch(torch.arange(len(ds)))
    for k in "abc":
        assert b[k].shape == (300, 4) and b[k].dtype == torch.float32
        assert set(b[k].unique().tolist()) <= {0.0, 1.0}
    a, bb, c, i = (b["a"].long(), b["b"].long(), b["c"].long(), b["factors"]["i"])
    expect = torch.where(i[:, None] == 1, a ^ bb, a)
    assert torch.equal(c, expect)
    assert 100 < int(i.sum()) < 200  # Bernoulli(0.5) over 300 samples
    for r in range(300):  # label = integer value of b, most significant bit first
        assert int(b["label"][r]) == int("".join(str(int(v)) for v in bb[r]), 2)
    assert ds.num_classes == 16 and ds.classes[5] == "0101"


def test_registry_errors():
    assert {"shapes", "digits", "xor"} <= set(D.available())
    with pytest.raises(ValueError) as e:
        D.load("shapez")
    for name in ("shapes", "digits", "xor"):
        assert name in str(e.value)
    with pytest.raises(ValueError, match="split.*'train', 'val', 'test'|valid splits"):
        D.load("shapes", "training")
    with pytest.raises(ValueError, match="Unknown option.*colour_count.*valid options"):
        D.load("shapes", n=4, colour_count=3)
    with pytest.raises(TypeError, match="`n` must be an int"):
        D.load("xor", n=2.5)
    with pytest.raises(ValueError, match="`p` must be in"):
        D.load("xor", p=1.5)
    with pytest.raises(ValueError, match="`templates` must be one of"):
        D.load("shapes", n=4, templates="unseen")
    with pytest.raises(ValueError, match="`n` must be ≤ 359"):
        D.load("digits", "test", n=5000)


def test_register_custom_dataset():
    @D.register("tiny_test_dataset")
    def _factory(split, n: int = 3):
        return D.MultimodalDataset({"x": torch.arange(n).float()[:, None]}, meta={"split": split})

    try:
        ds = D.load("tiny_test_dataset", "val", n=5)
        assert len(ds) == 5 and ds.meta["split"] == "val"
    finally:
        D.registry._REGISTRY.pop("tiny_test_dataset")


# ---- determinism ----------------------------------------------------------------------
def _bytes(ds) -> list[bytes]:
    out = []
    for k in ds.modalities:
        v = ds.modalities_data[k]
        out.append("\n".join(v).encode() if isinstance(v, list) else v.numpy().tobytes())
    out.append(ds.label.numpy().tobytes())
    return out


@pytest.mark.parametrize("name,kw", [("shapes", {"n": 12}), ("digits", {"n": 12}), ("xor", {"n": 50})])
def test_determinism(name, kw):
    a = _bytes(D.load(name, "train", seed=0, **kw))
    b = _bytes(D.load(name, "train", seed=0, **kw))
    c = _bytes(D.load(name, "train", seed=1, **kw))
    v = _bytes(D.load(name, "val", seed=0, **kw))
    assert a == b
    assert a[0] != c[0] and a[0] != v[0]


# ---- rendering: closed forms ----------------------------------------------------------
def test_render_areas_centroids_and_bbox():
    """Coverage α integrates to the shape's closed-form area; its centroid is the centre."""
    g = torch.Generator().manual_seed(0)
    kinds = torch.arange(len(SHAPES)).repeat_interleave(3)  # 3 rotations per shape, large size
    B = len(kinds)
    theta = torch.tensor([0.0, 0.7, 2.1] * len(SHAPES))
    cx = torch.full((B,), 15.3)
    cy = torch.full((B,), 16.6)
    red = torch.zeros(B, dtype=torch.int64)  # COLOURS[0] = red, R = 0.9
    size = torch.full((B,), 2, dtype=torch.int64)
    img, bbox = shapes_mod.render_shapes(kinds, red, size, cx, cy, theta, torch.zeros(B), g, noise_std=0.0)
    r = shapes_mod.HALF_EXTENT[2]
    s = 0.85 * r
    arm = 0.33 * r
    closed = {"circle": math.pi * r * r, "square": (2 * s) ** 2, "triangle": 3 * math.sqrt(3) / 4 * r * r,
              "cross": 2 * (2 * r) * (2 * arm) - (2 * arm) ** 2}
    alpha = img[:, 0].double() / shapes_mod.COLOUR_RGB["red"][0]  # (B, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
    for j in range(B):
        area = float(alpha[j].sum())
        name = SHAPES[int(kinds[j])]
        if name in closed:
            assert area == pytest.approx(closed[name], rel=0.04), name
        mx = float((alpha[j] * xx).sum() / area)
        my = float((alpha[j] * yy).sum() / area)
        assert mx == pytest.approx(15.3, abs=0.26) and my == pytest.approx(16.6, abs=0.26), name  # 2x supersampling
        on = (img[j] != 0).any(0)  # pixels touched by the shape (background is exactly 0)
        ys, xs = on.nonzero(as_tuple=True)
        assert bbox[j].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]


def test_shapes_positions_follow_factors(shapes_train):
    ds = shapes_train
    bbox = ds.meta["extras"]["bbox"]
    cx = (bbox[:, 0] + bbox[:, 2]) / 2
    cy = (bbox[:, 1] + bbox[:, 3]) / 2
    centres = torch.tensor(shapes_mod.CELL_CENTRE)
    # the box centre lies within jitter + 1 px (rasterisation) of its grid cell's centre
    assert bool(((cx - centres[ds.factors["col"]]).abs() <= shapes_mod.JITTER + 1.5).all())
    assert bool(((cy - centres[ds.factors["row"]]).abs() <= shapes_mod.JITTER + 1.5).all())


# ---- pairing and held-out voices / templates -------------------------------------------
def test_shapes_pairing_words_and_captions(shapes_train):
    ds = shapes_train
    f = ds.factors
    words = ds.meta["sample"]["words"]
    names = (SIZES, COLOURS, SHAPES, ROWS, COLS)
    keys = ("size", "colour", "shape", "row", "col")
    tables = (shapes_mod.SIZE_WORDS, shapes_mod.COLOUR_WORDS, shapes_mod.SHAPE_WORDS)
    for j in range(len(ds)):
        spoken = [VOCABULARY[int(w)] for w in words[j]]
        assert spoken == [names[k][int(f[keys[k]][j])] for k in range(5)]
        text = ds.modalities_data["text"][j]
        for k, table in enumerate(tables):  # the caption names this sample's size, colour and shape
            value = names[k][int(f[keys[k]][j])]
            assert any(w in text for w in table[value][0] + table[value][1]), (text, value)
        assert ROWS[int(f["row"][j])] in text or any(w in text for w in shapes_mod.ROW_WORDS[ROWS[int(f["row"][j])]][0])


def test_digits_pairing(digits_test):
    ds = digits_test
    words = {w: i for i, w in enumerate(DIGIT_WORDS)}
    for j in range(len(ds)):
        label = int(ds.label[j])
        text = ds.modalities_data["text"][j]
        tokens = text.split()
        text_class = [words[t] if t in words else int(t) for t in tokens if t in words or t.isdigit()]
        assert text_class == [label], text
        assert DIGIT_WORDS[label] == VOCABULARY[int(ds.meta["sample"]["word"][j])]
        raw_label = digits_mod.digit_images()[1][int(ds.meta["sample"]["image_id"][j])]
        assert int(raw_label) == label
        assert torch.equal(ds.modalities_data["image"][j], digits_mod.digit_images()[0][int(ds.meta["sample"]["image_id"][j])])


def test_voices_disjoint_and_used_per_split():
    by_split = {s: {v.voice_id for v in D.split_voices(s)} for s in D.SPLITS}
    assert sum(map(len, by_split.values())) == len(VOICES) == len({v.voice_id for v in VOICES})
    for s1, s2 in itertools.combinations(D.SPLITS, 2):
        assert not by_split[s1] & by_split[s2]
    for split in D.SPLITS:
        for ds, key in ((D.load("shapes", split, n=30), "sample"), (D.load("digits", split, n=30, speech="synthetic"), None)):
            ids = ds.meta["sample"]["voice"] if key else ds.factors["voice"]
            used = {VOICES[int(i)].voice_id for i in ids}
            assert used <= by_split[split], (split, used)


def test_heldout_templates_never_in_train():
    n_train = len(shapes_mod.TRAIN_TEMPLATES)
    tr = D.load("shapes", "train", n=60, templates="train", audio=False)
    ho = D.load("shapes", "train", n=60, templates="heldout", audio=False)
    al = D.load("shapes", "train", n=60, templates="all", audio=False)
    assert int(tr.meta["sample"]["template"].max()) < n_train
    assert int(ho.meta["sample"]["template"].min()) >= n_train
    assert int(al.meta["sample"]["template"].min()) < n_train <= int(al.meta["sample"]["template"].max())
    # every caption the "train" wording can produce, by exhaustive enumeration
    tables = (shapes_mod.SIZE_WORDS, shapes_mod.COLOUR_WORDS, shapes_mod.SHAPE_WORDS,
              shapes_mod.ROW_WORDS, shapes_mod.COL_WORDS)
    options = [sorted({w for v in t.values() for w in v[0]}) for t in tables]
    possible = set()
    for tmpl in shapes_mod.TRAIN_TEMPLATES:
        for size, colour, shape, row, col in itertools.product(*options):
            possible.add(shapes_mod._fix_articles(tmpl.format(size=size, colour=colour, shape=shape, row=row, col=col)))
    assert set(tr.modalities_data["text"]) <= possible
    assert not set(ho.modalities_data["text"]) & possible
    heldout_synonyms = {w for t in tables[:3] for v in t.values() for w in v[1]}
    train_synonyms = {w for t in tables[:3] for v in t.values() for w in v[0]}
    assert not heldout_synonyms & train_synonyms


def test_compose_phrases_closed_form():
    """Speed 1, fixed gap and huge SNR: the output is the words joined by zeros, at the offset."""
    rng = np.random.default_rng(0)
    w1 = np.sin(np.arange(800) / 7.0).astype(np.float32) * 0.5
    w2 = np.cos(np.arange(500) / 3.0).astype(np.float32) * 0.4
    audio, info = compose_phrases([[w1, w2], [w2]], 4000, rng, speed=(1.0, 1.0), gap_s=(0.01, 0.01),
                                  snr_db=(300.0, 300.0))
    gap = np.zeros(160, np.float32)
    for b, phrase in enumerate([np.concatenate([w1, gap, w2]), w2]):
        off = int(round(float(info["offset_s"][b]) * 16_000))
        expect = np.zeros(4000, np.float32)
        expect[off:off + len(phrase)] = phrase
        np.testing.assert_allclose(audio[b].numpy(), expect, atol=1e-6)
        assert float(info["duration_s"][b]) * 16_000 == pytest.approx(len(phrase))


def test_compose_phrases_speed_and_snr():
    rng = np.random.default_rng(1)
    w = np.sin(2 * np.pi * 440 * np.arange(3200) / 16_000).astype(np.float32)
    audio, info = compose_phrases([[w]] * 64, 16_000, rng, speed=(0.9, 1.1), snr_db=(10.0, 10.0))
    assert bool(((info["speed"] >= 0.9) & (info["speed"] <= 1.1)).all())
    np.testing.assert_allclose(info["duration_s"].numpy() * info["speed"].numpy(), 3199 / 16_000, rtol=1e-3)
    # noise power outside the phrase ≈ P_signal / 10 (SNR 10 dB), P_signal = 1/2 for a unit sine
    for b in range(4):
        off = int(round(float(info["offset_s"][b]) * 16_000))
        outside = torch.cat([audio[b, :off], audio[b, off + int(info["duration_s"][b] * 16_000) + 1:]])
        assert float(outside.square().mean()) == pytest.approx(0.05, rel=0.1)


# ---- batch API ------------------------------------------------------------------------
def _assert_same(x, y):
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y)
    elif isinstance(x, dict):
        assert x.keys() == y.keys()
        for k in x:
            _assert_same(x[k], y[k])
    else:
        assert x == y


@pytest.mark.parametrize("name", ["shapes", "digits", "xor"])
def test_batch_collate_getitem_agree(name):
    ds = D.load(name, "val", n=10, seed=2)
    idx = torch.tensor([3, 0, 7, 7, 9])
    via_items = D.collate([ds[int(i)] for i in idx])
    via_batch = ds.batch(idx)
    assert via_items.keys() == via_batch.keys()
    _assert_same(via_items, via_batch)
    # batches(): a shuffled pass visits every index once; same generator, same order
    seen = torch.cat([b["index"] for b in ds.batches(4, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    again = torch.cat([b["index"] for b in ds.batches(4, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(seen, again)
    sizes = [len(b["index"]) for b in ds.batches(4, shuffle=False, drop_last=True)]
    assert sizes == [4, 4]
    for b in ds.batches(3, shuffle=False):
        _assert_same(b, D.collate([ds[int(i)] for i in b["index"]]))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=D.collate)
    _assert_same(next(iter(loader)), ds.batch(torch.arange(4)))


def test_to_subset_present_and_errors(shapes_train):
    ds = shapes_train
    cpu = ds.to("cpu")
    assert cpu.device == torch.device("cpu") and len(cpu) == len(ds)
    _assert_same(cpu.batch(torch.arange(5)), ds.batch(torch.arange(5)))
    sub = ds.subset(torch.tensor([5, 2]))
    _assert_same(sub[1]["image"], ds[2]["image"])
    assert sub.modalities_data["text"] == [ds.modalities_data["text"][5], ds.modalities_data["text"][2]]
    assert torch.equal(sub.meta["extras"]["bbox"], ds.meta["extras"]["bbox"][[5, 2]])
    assert torch.equal(sub.meta["sample"]["words"], ds.meta["sample"]["words"][[5, 2]])
    assert sub.meta["voices"] == ds.meta["voices"]
    present = {"audio": torch.arange(N) % 2 == 0}
    masked = D.MultimodalDataset(ds.modalities_data, ds.label, ds.factors, present=present, classes=ds.classes)
    b = masked.batch(torch.tensor([0, 1, 2]))
    assert b["present"]["audio"].tolist() == [True, False, True]
    assert "present" not in ds.batch(torch.tensor([0]))
    assert masked[1]["present"]["audio"].item() is False
    with pytest.raises(ValueError, match="same number of rows"):
        D.MultimodalDataset({"image": torch.zeros(3, 2), "text": ["a", "b"]})
    with pytest.raises(ValueError, match="outside the dataset"):
        ds.batch(torch.tensor([0, N]))
    with pytest.raises(IndexError):
        ds[N]
    with pytest.raises(ValueError, match="names no modality"):
        D.MultimodalDataset({"image": torch.zeros(2, 1)}, present={"audio": torch.ones(2, dtype=torch.bool)})


def test_subset_slices_per_sample_lists_in_meta():
    """Lists of length N under meta["sample"] and meta["ids"] are per-sample: subset slices them
    like the rows (compared with a brute-force list comprehension); other meta is kept as is."""
    n = 6
    names = [f"s{i}" for i in range(n)]
    ds = D.MultimodalDataset({"image": torch.arange(n, dtype=torch.float32)[:, None]},
                             meta={"ids": list(names), "sample": {"name": list(names), "k": torch.arange(n) * 10},
                                   "vocabulary": ["a", "b"]})
    idx = [4, 1, 1, 5]
    sub = ds.subset(torch.tensor(idx))
    assert sub.meta["ids"] == sub.meta["sample"]["name"] == [names[i] for i in idx]
    assert sub.meta["sample"]["k"].tolist() == [10 * i for i in idx]
    assert sub.meta["vocabulary"] == ["a", "b"]
    assert [f"s{int(v)}" for v in sub.modalities_data["image"][:, 0]] == sub.meta["ids"]
    for bad in ({"ids": names[:-1]}, {"sample": {"name": names + ["x"]}}):
        with pytest.raises(ValueError, match="same number of rows"):
            D.MultimodalDataset({"image": torch.zeros(n, 1)}, meta=bad)


# ---- checksums ------------------------------------------------------------------------
@pytest.fixture()
def data_copy(tmp_path, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(D.DATA_ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setenv("MMLAB_DATA", str(root))
    return root


def test_checksum_corrupt_file_message(data_copy):
    victim = data_copy / "speech" / "v00" / "red.wav"
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    import hashlib

    got = hashlib.sha256(bytes(raw)).hexdigest()
    with pytest.raises(D.DataFileError) as e:
        D.load("shapes", "train", n=4)
    msg = str(e.value)
    assert str(victim) in msg and "checksum" in msg and got in msg
    assert "python data/build_speech.py" in msg
    assert isinstance(e.value, OSError)


def test_checksum_missing_file_message(data_copy):
    victim = data_copy / "speech" / "v14" / "seven.wav"
    victim.unlink()
    with pytest.raises(D.DataFileError, match=r"missing.*v14/seven\.wav.*python data/build_speech\.py"):
        D.load("digits", "test", root=data_copy, speech="synthetic")


def test_missing_manifest_message(tmp_path):
    with pytest.raises(D.DataFileError, match="manifest.json.*python data/build_speech.py"):
        D.load("shapes", "train", n=2, root=tmp_path)


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MMLAB_DATA", str(tmp_path))
    assert D.data_root() == tmp_path
    monkeypatch.delenv("MMLAB_DATA")
    assert D.data_root() == Path(D.__file__).resolve().parents[2] / "data"


# ---- XOR: exact information ----------------------------------------------------------
def _mi_brute(joint: dict[tuple, float]) -> float:
    """I(X; Y) from a dict {(x, y): p} with explicit loops."""
    px, py = defaultdict(float), defaultdict(float)
    for (x, y), p in joint.items():
        px[x] += p
        py[y] += p
    return sum(p * math.log(p / (px[x] * py[y])) for (x, y), p in joint.items() if p > 0)


@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_xor_mutual_information_exact(bits, p):
    codes, prob = D.xor_joint(bits, p)
    assert prob.sum() == pytest.approx(1.0, abs=1e-12)
    # independent brute force: enumerate a, b, i with their probabilities
    m = 2 ** bits
    joint_ba, joint_bc, joint_bac = defaultdict(float), defaultdict(float), defaultdict(float)
    for a in range(m):
        for b in range(m):
            for i, pi in ((1, p), (0, 1 - p)):
                c = (a ^ b) if i else a
                q = pi / m / m
                joint_ba[(b, a)] += q
                joint_bc[(b, c)] += q
                joint_bac[(b, (a, c))] += q
    i_ba = D.mutual_information(prob, codes[:, 1], codes[:, 0])
    i_bc = D.mutual_information(prob, codes[:, 1], codes[:, 2])
    i_bac = D.mutual_information(prob, codes[:, 1], codes[:, [0, 2]])
    assert i_ba == pytest.approx(0.0, abs=1e-12) and i_bc == pytest.approx(0.0, abs=1e-12)
    assert i_ba == pytest.approx(_mi_brute(joint_ba), abs=1e-12)
    assert i_bc == pytest.approx(_mi_brute(joint_bc), abs=1e-12)
    assert i_bac == pytest.approx(_mi_brute(joint_bac), abs=1e-12)
    if p == 1.0:
        assert i_bac == pytest.approx(bits * math.log(2), abs=1e-12)
    if p == 0.0:
        assert i_bac == pytest.approx(0.0, abs=1e-12)


def test_xor_samples_follow_joint():
    bits, p, n = 2, 0.7, 20_000
    ds = D.load("xor", "train", bits=bits, p=p, n=n, seed=5)
    a, b, c = (D.bits_to_int(ds.modalities_data[k]) for k in "abc")
    codes, prob = D.xor_joint(bits, p)
    counts = defaultdict(int)
    for t in zip(a.tolist(), b.tolist(), c.tolist()):
        counts[t] += 1
    assert set(counts) <= {tuple(r) for r in codes.tolist()}
    for row, q in zip(codes.tolist(), prob):
        sd = math.sqrt(q * (1 - q) / n)
        assert abs(counts[tuple(row)] / n - q) < 5 * sd


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
@pytest.mark.parametrize("p", [0.0, 0.25, 0.6, 1.0])
def test_xor_bayes_accuracy_brute_force(bits, p):
    # independent brute force: enumerate (a, b, i), keep max_b p(a, b, c) for every (a, c)
    m = 2 ** bits
    joint = defaultdict(float)
    for a, b in itertools.product(range(m), range(m)):
        for i, pi in ((1, p), (0, 1 - p)):
            joint[(a, b, (a ^ b) if i else a)] += pi / m / m
    best = defaultdict(float)
    for (a, b, c), q in joint.items():
        best[(a, c)] = max(best[(a, c)], q)
    assert D.bayes_accuracy(bits, p) == pytest.approx(sum(best.values()), abs=1e-12)
    # the same optimum read from xor_joint's table, and the closed form 2^-bits + (1 - 2^-bits) p
    codes, prob = D.xor_joint(bits, p)
    from_joint = defaultdict(float)
    for (a, _, c), q in zip(codes.tolist(), prob.tolist()):
        from_joint[(a, c)] = max(from_joint[(a, c)], q)
    assert D.bayes_accuracy(bits, p) == pytest.approx(sum(from_joint.values()), abs=1e-12)
    assert D.bayes_accuracy(bits, p) == pytest.approx(1 / m + (m - 1) * p / m, abs=1e-12)


def test_xor_bayes_accuracy_limits_and_errors():
    for bits in (1, 3, 6):
        assert D.bayes_accuracy(bits, 1.0) == 1.0
        assert D.bayes_accuracy(bits, 0.0) == 2.0 ** -bits
    assert D.bayes_accuracy(3, 0.5) == pytest.approx(1 / 8 + 7 / 16)
    # the optimum is reached by the rule b = a XOR c on sampled data (up to sampling noise)
    ds = D.load("xor", "test", bits=3, p=0.5, n=4000, seed=1)
    a, c = (ds.modalities_data[k] for k in "ac")
    hits = (D.bits_to_int((a + c) % 2) == ds.label).double().mean()
    sd = math.sqrt(0.5625 * 0.4375 / 4000)
    assert abs(float(hits) - D.bayes_accuracy(3, 0.5)) < 5 * sd
    with pytest.raises(ValueError, match="`p`"):
        D.bayes_accuracy(3, 1.5)
    with pytest.raises(ValueError, match="`bits`"):
        D.bayes_accuracy(0, 0.5)
    with pytest.raises(TypeError, match="`bits`"):
        D.bayes_accuracy(2.0, 0.5)
