"""Tests for the shipped data files: manifest checksums, WAV format, size budget, and that
`data/build_speech.py` is deterministic (run for a few clips when espeak-ng is installed)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from mmlab.data.speech import SAMPLE_RATE, VOICES, clip_relpath
from mmlab.data.words import VOCABULARY

ROOT = Path(__file__).resolve().parents[1] / "data"
MANIFEST = json.loads((ROOT / "manifest.json").read_text(encoding="utf-8"))


def _build_module():
    spec = importlib.util.spec_from_file_location("build_speech", ROOT / "build_speech.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_manifest_lists_exactly_the_shipped_clips_with_correct_sha256():
    on_disk = {p.relative_to(ROOT).as_posix() for p in (ROOT / "speech").rglob("*") if p.is_file()}
    expected = {clip_relpath(v.voice_id, w) for v in VOICES for w in VOCABULARY}
    assert on_disk == expected == set(MANIFEST["files"])
    for rel, entry in MANIFEST["files"].items():
        data = (ROOT / rel).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], rel
        assert len(data) == entry["bytes"], rel


def test_manifest_build_parameters_match_code():
    assert [v["voice_id"] for v in MANIFEST["voices"]] == [v.voice_id for v in VOICES]
    for entry, v in zip(MANIFEST["voices"], VOICES):
        assert (entry["voice"], entry["variant"], entry["speed"], entry["pitch"], entry["split"]) == \
            (v.voice, v.variant, v.speed, v.pitch, v.split)
    assert MANIFEST["vocabulary"] == list(VOCABULARY)
    assert MANIFEST["build"]["sample_rate"] == SAMPLE_RATE


def test_data_dir_size_budget():
    total = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 25 * 2**20, f"data/ is {total / 2**20:.1f} MiB; the budget is 25 MiB (hard limit 30)"


def test_clips_are_16k_mono_int16_trimmed():
    for v in VOICES:
        for word in ("zero", "triangle", "left"):
            with wave.open(str(ROOT / clip_relpath(v.voice_id, word)), "rb") as w:
                assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
                x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64) / 32768
            assert 0.1 < len(x) / SAMPLE_RATE < 1.0, (v.voice_id, word, len(x))
            peak = np.abs(x).max()
            assert peak == pytest.approx(0.9, abs=0.01)
            # trimmed: sound within the first and last 30 ms (margin 10 ms + fade 5 ms + onset)
            edge = int(0.03 * SAMPLE_RATE)
            assert np.abs(x[:edge]).max() > 0.02 * peak and np.abs(x[-edge:]).max() > 0.02 * peak
            assert abs(x[0]) < 0.01 and abs(x[-1]) < 0.01  # faded ends: no click


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_build_is_deterministic(tmp_path):
    build = _build_module()
    voices = [VOICES[0], VOICES[-3]]
    words = ["seven", "purple"]
    first = build.build(tmp_path / "a", voices=voices, words=words, write_manifest=False)
    second = build.build(tmp_path / "b", voices=voices, words=words, write_manifest=False)
    for rel in first:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    if build.espeak_version() == MANIFEST["build"]["espeak_ng"]:  # same synthesiser: same bytes as shipped
        for rel, entry in first.items():
            assert entry["sha256"] == MANIFEST["files"][rel]["sha256"], rel
