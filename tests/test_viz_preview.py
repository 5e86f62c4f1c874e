"""Tests for mmlab.viz.preview: image grids, audio players and log-mel spectrogram previews.

The spectrogram previews are checked against the audio encoders' own `LogMel` (the preview
must show exactly the matrix an encoder sees), and `import mmlab.data` must not load plotly.
"""

from __future__ import annotations

import base64
import io
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

import mmlab.data as D
import mmlab.viz as V
from mmlab.encoders import AudioConvEncoder, LogMel


@pytest.fixture(scope="module")
def shapes_batch():
    return D.load("shapes", "train", n=8, seed=0).batch(torch.arange(6))


def test_previews(shapes_batch):
    b = shapes_batch
    fig = V.image_grid(b["image"], b["text"], ncols=3)
    assert fig.layout.title.text and len(fig.data) == 6
    assert "px" in fig.layout.xaxis4.title.text and "px" in fig.layout.yaxis.title.text
    spec = V.spectrogram_figure(b["audio"][0])
    assert spec.layout.xaxis.title.text == "time (s)" and "mel bin" in spec.layout.yaxis.title.text
    assert spec.data[0].z.shape == (LogMel().n_mels, 32_000 // 160 + 1)
    player = V.audio_player(b["audio"][0])
    assert player.data[:4] == b"RIFF" and int.from_bytes(player.data[24:28], "little") == 16_000
    with pytest.raises(ValueError, match="captions"):
        V.image_grid(b["image"], ["one"])
    assert V.show_batch(b, n=2) is not None


def test_spectrogram_preview_is_what_the_encoder_computes(shapes_batch):
    wave = shapes_batch["audio"][:2]  # (2, T)
    encoder = AudioConvEncoder(out_dim=4, width=4)
    seen = encoder.logmel(wave)  # (2, n_mels, frames): the matrix the encoder standardises
    fig = V.spectrogram_figure(wave[1])
    np.testing.assert_array_equal(fig.data[0].z, seen[1].numpy())
    np.testing.assert_allclose(fig.data[0].x[1], 160 / 16_000)  # one hop, in seconds
    grid = V.spectrogram_grid(wave, ["a", "b"])
    np.testing.assert_array_equal(grid.data[0].z, seen[0].numpy())


def test_spectrogram_grid_and_audio_players_show_each_clip():
    import soundfile as sf

    rate = 16_000
    t = torch.arange(rate) / rate
    waves = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (300.0, 1200.0, 3000.0)])
    fig = V.spectrogram_grid(waves, ["low", "mid", "high"], ncols=2)
    assert len(fig.data) == 3 and [a.text for a in fig.layout.annotations] == ["low", "mid", "high"]
    np.testing.assert_array_equal(fig.data[1].z, LogMel()(waves[1:2])[0].numpy())  # its clip
    assert len({(tr.zmin, tr.zmax) for tr in fig.data}) == 1  # one colour scale for all panels
    with pytest.raises(ValueError, match="titles"):
        V.spectrogram_grid(waves, ["one"])
    html = V.audio_players(waves[:2], ["a <b>", "b"])
    assert html.count("<audio") == 2 and "a &lt;b&gt;" in html and "http" not in html
    payload = html.split("base64,")[1].split('"')[0]
    back, back_rate = sf.read(io.BytesIO(base64.b64decode(payload)), dtype="float32")
    assert back_rate == rate and np.abs(back - waves[0].numpy()).max() < 1e-4  # 16-bit WAV


def test_import_mmlab_data_does_not_load_plotly():
    code = ("import sys, mmlab.data, mmlab.encoders; "
            "bad = sorted(m for m in sys.modules if m.startswith(('plotly', 'mmlab.viz'))); "
            "print(bad); sys.exit(1 if any(m.startswith('plotly') for m in bad) else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "mmlab.viz" not in done.stdout
