"""Real speech (FSDD): shipped files, checksums, resampling, pairing and splits."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import mmlab.data as D
from mmlab.data import fsdd

DATA = Path(__file__).resolve().parents[1] / "data"
FSDD = DATA / "fsdd"
SOURCE = DATA.parent.parent / "shared" / "datasets" / "fsdd" / "recordings"
MANIFEST = json.loads((FSDD / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def rec():
    return fsdd.load_recordings()


@pytest.fixture(scope="module")
def splits():
    return {(s, by): D.load("digits", s, speech="real", split_by=by)
            for s in ("train", "val", "test") for by in ("speaker", "take")}


# ----------------------------------------------------------------------------- shipped files
def test_manifest_lists_every_recording_with_its_sha256():
    on_disk = {p.name for p in FSDD.glob("*.flac")}
    assert on_disk == set(MANIFEST["files"]) and len(on_disk) == 3000
    names = {f"{d}_{s}_{t}.flac" for d in range(10) for s in fsdd.SPEAKERS for t in range(50)}
    assert on_disk == names
    for name in sorted(on_disk)[::97]:
        data = (FSDD / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == MANIFEST["files"][name]["sha256"], name
        assert len(data) == MANIFEST["files"][name]["bytes"]


def test_licence_and_attribution_ship_with_the_files():
    text = (FSDD / "LICENSE.md").read_text(encoding="utf-8")
    for words in ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/", "10.5281/zenodo.1342401",
                  "Zohar Jackson", "FLAC", "Changes made"):
        assert words in text
    assert MANIFEST["source"]["licence"].startswith("CC BY-SA 4.0")
    readme = (DATA.parent / "README.md").read_text(encoding="utf-8")
    assert "Free Spoken Digit Dataset" in readme and "CC BY-SA 4.0" in readme


@pytest.mark.skipif(not SOURCE.is_dir(), reason="the FSDD source copy is not beside the repository")
def test_flac_holds_the_source_samples_exactly():
    for name in ("0_george_0", "7_theo_31", "9_yweweler_49"):
        wav, rate = sf.read(SOURCE / f"{name}.wav", dtype="int16")
        flac, rate2 = sf.read(FSDD / f"{name}.flac", dtype="int16")
        assert rate == rate2 == 8000 and np.array_equal(wav, flac)
        assert MANIFEST["files"][f"{name}.flac"]["frames"] == len(wav)


def test_a_flipped_byte_is_a_clear_error(tmp_path):
    root = tmp_path / "fsdd"
    root.mkdir()
    names = ["0_george_0.flac", "1_theo_3.flac"]
    for n in names:
        shutil.copy(FSDD / n, root / n)
    sub = {**MANIFEST, "files": {n: MANIFEST["files"][n] for n in names}}
    (root / "manifest.json").write_text(json.dumps(sub), encoding="utf-8")
    assert fsdd.load_recordings(tmp_path).audio([0, 1]).shape == (2, 16000)  # intact copy loads
    data = bytearray((root / names[1]).read_bytes())
    data[len(data) // 2] ^= 0x01
    (root / names[1]).write_bytes(bytes(data))
    fsdd._load.cache_clear()
    rec = fsdd.load_recordings(tmp_path)  # the index reads only the manifest
    assert rec.audio([0]).shape == (1, 16000)
    with pytest.raises(D.DataFileError, match=r"1_theo_3\.flac.*checksum mismatch.*build_fsdd\.py"):
        rec.audio([1])
    fsdd._load.cache_clear()


# ----------------------------------------------------------------------------- resampling
def test_upsampling_matches_the_band_limited_signal():
    """A 440 Hz + 2.5 kHz tone sampled at 8 kHz, upsampled, equals the tone sampled at 16 kHz."""
    t8, t16 = np.arange(8000) / 8000, np.arange(16000) / 16000
    tone = lambda t: 0.5 * np.sin(2 * math.pi * 440 * t) + 0.3 * np.cos(2 * math.pi * 2500 * t + 0.3)
    up = fsdd.upsample(np.stack([tone(t8), 0.5 * tone(t8)]).astype(np.float32))  # (2, 16000)
    inner = slice(400, -400)  # away from the edges, where the filter sees zeros
    assert np.abs(up[0, inner] - tone(t16)[inner]).max() < 2e-3
    assert np.abs(up[1, inner] - 0.5 * tone(t16)[inner]).max() < 1e-3  # linear, row by row


def test_upsampling_agrees_with_torchaudio():
    import torchaudio.functional as AF

    # white noise low-passed to 3 kHz (both resamplers pass it; they differ only near 4 kHz)
    spectrum = torch.fft.rfft(torch.randn(5, 8000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    spectrum[:, 3000:] = 0  # bins are 1 Hz apart at 8 kHz over 1 s
    x = torch.fft.irfft(spectrum, n=8000).float()  # (5, 8000)
    ours = torch.from_numpy(fsdd.upsample(x.numpy()))
    theirs = AF.resample(x, 8000, 16000)
    assert ours.shape == theirs.shape == (5, 16000)
    assert (ours - theirs)[:, 400:-400].abs().max() < 1e-2 * x.abs().max()


def test_fit_length_pads_short_waves_and_keeps_the_middle_of_long_ones():
    # waves 1, 2, ..., n make every kept sample name its own position
    got = fsdd.fit_length([np.arange(1, n + 1, dtype=np.float32) for n in (3, 10, 14, 13)], 10)
    assert got.shape == (4, 10) and got.dtype == np.float32
    assert got[0].tolist() == [1, 2, 3] + [0] * 7  # short: left-aligned, zero-padded
    assert got[1].tolist() == list(range(1, 11))  # exact: unchanged
    assert got[2].tolist() == list(range(3, 13))  # 14 → drop 2 at each end
    assert got[3].tolist() == list(range(2, 12))  # 13 → drop 1 at the start, 2 at the end


# ----------------------------------------------------------------------------- pairing and splits
def test_every_pair_has_the_same_digit_and_traces_back_to_its_file(rec, splits):
    for ds in splits.values():
        pick = ds.meta["sample"]["recording"]
        assert torch.equal(rec.digit[pick], ds.label)  # the recording says the image's digit
        assert torch.equal(ds.factors["speaker"], rec.speaker[pick])
        assert [int(n.split("_")[0]) for n in ds.meta["sources"]] == ds.label.tolist()
        assert [fsdd.SPEAKERS.index(n.split("_")[1]) for n in ds.meta["sources"]] == ds.factors["speaker"].tolist()
        batch = ds.batch(torch.arange(len(ds)))
        assert torch.equal(batch["audio"], rec.audio(pick))
        texts = batch["text"]
        words = ds.meta["vocabulary"]
        for y, text in zip(ds.label.tolist(), texts):
            assert words[y] in text or str(y) in text.split()


def test_speaker_split_holds_speakers_out_and_no_recording_leaks(splits):
    for by in ("speaker", "take"):
        seen: dict[str, str] = {}
        for s in ("train", "val", "test"):
            for name in splits[(s, by)].meta["sources"]:
                assert seen.setdefault(name, s) == s, f"{name} is in {seen[name]} and {s}"
    speakers = {s: set(splits[(s, "speaker")].meta["sources"][i].split("_")[1]
                       for i in range(len(splits[(s, "speaker")]))) for s in ("train", "val", "test")}
    assert speakers == {s: set(fsdd.SPEAKER_SPLITS[s]) for s in speakers}
    assert not (speakers["train"] & (speakers["val"] | speakers["test"]))
    # the speaker split's train never uses FSDD's test takes: the take split's test is unheard for it
    train_takes = {int(n[:-5].split("_")[2]) for n in splits[("train", "speaker")].meta["sources"]}
    assert min(train_takes) == 5 and not train_takes & set(fsdd.TAKE_SPLITS["test"])
    assert not set(splits[("train", "speaker")].meta["sources"]) & set(splits[("test", "take")].meta["sources"])
    for s, takes in fsdd.TAKE_SPLITS.items():
        assert {int(n[:-5].split("_")[2]) for n in splits[(s, "take")].meta["sources"]} <= set(takes)


def test_recordings_are_distinct_while_a_class_has_enough(splits):
    for (s, by), ds in splits.items():
        names = ds.meta["sources"]
        if by == "speaker":  # 50+ recordings per digit and split, at most 108 images
            per_class = np.bincount(ds.label.numpy(), minlength=10)
            takes = len(fsdd.SPEAKER_SPLIT_TRAIN_TAKES) if s == "train" else 50
            if (per_class <= takes * len(fsdd.SPEAKER_SPLITS[s])).all():
                assert len(set(names)) == len(names), (s, by)


def test_real_speech_is_the_default_and_audio_false_keeps_the_pairing():
    full = D.load("digits", "test", n=40, seed=2)
    light = D.load("digits", "test", n=40, seed=2, audio=False)
    assert full.meta["speech"] == "real" and "audio" in full.modalities and "audio" not in light.modalities
    assert full.meta["sources"] == light.meta["sources"]
    assert torch.equal(full.factors["speaker"], light.factors["speaker"])
    assert set(full.factors) == {"digit", "speaker"}
    synthetic = D.load("digits", "test", n=40, seed=2, speech="synthetic")
    assert set(synthetic.factors) == {"digit", "voice"} and "sources" not in synthetic.meta


def test_pairing_is_fixed_by_the_seed():
    a = D.load("digits", "val", speech="real", seed=3, n=50)
    b = D.load("digits", "val", speech="real", seed=3, n=50)
    c = D.load("digits", "val", speech="real", seed=4, n=50)
    assert a.meta["sources"] == b.meta["sources"] and a.meta["sources"] != c.meta["sources"]


def test_bad_rows_are_named(rec):
    with pytest.raises(ValueError, match=r"`rows` must index the 3000 recordings.*\[3000, -1\]"):
        rec.audio([0, 3000, -1])
    assert rec.audio([]).shape == (0, 16000)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="speech"):
        D.load("digits", "train", speech="human")
    with pytest.raises(ValueError, match="split_by"):
        D.load("digits", "train", speech="real", split_by="voice")


def test_a_subset_keeps_each_sample_with_its_source_file():
    ds = D.load("digits", "test", n=30, seed=1, audio=False)
    rows = torch.tensor([7, 0, 29, 7])
    sub = ds.subset(rows)
    assert sub.meta["sources"] == [ds.meta["sources"][i] for i in rows.tolist()]
    assert torch.equal(sub.meta["sample"]["recording"], ds.meta["sample"]["recording"][rows])
    assert torch.equal(sub.factors["speaker"], ds.factors["speaker"][rows])


def test_seen_speakers_marks_the_training_speakers():
    test = D.load("digits", "test", split_by="take", audio=False)
    seen = fsdd.seen_speakers(test.factors["speaker"])
    names = [n.split("_")[1] for n in test.meta["sources"]]
    assert seen.tolist() == [n in fsdd.SPEAKER_SPLITS["train"] for n in names]
    assert 0 < int(seen.sum()) < len(test)  # both groups are in FSDD's test takes


def test_a_recording_at_16khz_matches_torchaudio_on_the_raw_file(rec):
    import torchaudio.functional as AF

    for name in ("3_jackson_12.flac", "0_theo_0.flac"):  # a loud and a quiet take, both padded to 1 s
        row = rec.names.index(name)
        raw, rate = sf.read(FSDD / name, dtype="float32")  # the file, read independently
        x = np.zeros(8000, np.float32)
        start = max((len(raw) - 8000) // 2, 0)
        seg = raw[start:start + 8000]
        x[:len(seg)] = seg
        theirs = AF.resample(torch.from_numpy(x)[None], rate, 16000)[0]  # (16000,)
        ours = rec.audio([row])[0]
        assert ours.shape == (16000,)
        # the two low-pass filters differ only in the transition band just below 4 kHz
        assert (ours - theirs).norm() < 0.05 * theirs.norm(), name
        below = slice(0, 3500)  # FFT bins 1 Hz apart over 1 s
        ours_f, theirs_f = torch.fft.rfft(ours.double())[below], torch.fft.rfft(theirs.double())[below]
        assert (ours_f - theirs_f).abs().norm() < 0.02 * theirs_f.abs().norm(), name
