"""Quick looks at a dataset for notebook 00: image grids, audio players, log-mel spectrograms.

The spectrograms are computed by `mmlab.encoders.audio.log_mel` with the encoders' settings
(Davis & Mermelstein, 1980): |STFT|² (25 ms Hann window, 10 ms hop at 16 kHz) → 40 mel bands →
10·log10(max(·, 1e-10)) dB, floored 80 dB below each clip's maximum. So a preview shows exactly
the matrix `LogMel` hands an audio encoder.
"""

from __future__ import annotations

import html
import textwrap
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from mmlab._checks import check_int, check_positive, check_tensor
from mmlab.data import SAMPLE_RATE
from mmlab.encoders.audio import HOP_LENGTH, N_MELS, log_mel


def _wrap(text: str, width: int = 22) -> str:
    return "<br>".join(textwrap.wrap(text, width)[:3]) or " "


def image_grid(images: Tensor, captions: list[str] | None = None, ncols: int = 8,
               title: str = "Images") -> go.Figure:
    """A grid of images with optional captions.

    Args:
        images: float `(B, 3, H, W)` or `(B, H, W)` in [0, 1].
        captions: B strings shown above the images, or None.
        ncols: images per row.
        title: figure title.
    Returns:
        A plotly Figure (axes in pixels).
    """
    check_tensor("images", images)
    if images.ndim == 3:
        images = images[:, None].expand(-1, 3, -1, -1)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"`images` must have shape (B, 3, H, W) or (B, H, W), "
                         f"got {tuple(images.shape)}.")
    check_int("ncols", ncols)
    B = images.shape[0]
    if captions is not None and len(captions) != B:
        raise ValueError(f"`captions` has {len(captions)} entries for {B} images; "
                         "pass one per image.")
    ncols = min(ncols, B)
    nrows = -(-B // ncols)
    titles = [_wrap(c) for c in captions] if captions is not None else None
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles,
                        horizontal_spacing=0.01, vertical_spacing=0.12 / max(nrows, 1) + 0.02)
    pix = (images.detach().float().cpu().clamp(0, 1).expand(-1, 3, -1, -1) * 255).round().byte()
    pix = pix.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    for k in range(B):
        fig.add_trace(go.Image(z=pix[k], hovertemplate="x %{x} px, y %{y} px<extra></extra>"),
                      row=k // ncols + 1, col=k % ncols + 1)
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    for c in range(1, ncols + 1):
        fig.update_xaxes(title_text="x (px)", row=nrows, col=c)
    for r in range(1, nrows + 1):
        fig.update_yaxes(title_text="y (px)", row=r, col=1)
    fig.update_annotations(font_size=9)
    fig.update_layout(title=title, height=150 * nrows + 120, width=max(110 * ncols, 400),
                      margin=dict(l=40, r=10, t=90, b=40))
    return fig


def audio_player(wave: Tensor | np.ndarray, rate: int = SAMPLE_RATE) -> Any:
    """An `IPython.display.Audio` player for one waveform `(T,)` at `rate` Hz."""
    from IPython.display import Audio

    if isinstance(wave, Tensor):
        x = wave.detach().float().cpu().numpy()
    else:
        x = np.asarray(wave, np.float32)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"`wave` must be one non-empty waveform of shape (T,), "
                         f"got shape {x.shape}.")
    check_int("rate", rate)
    return Audio(data=x, rate=rate)


def clip_log_mel(wave: Tensor, rate: int = SAMPLE_RATE, n_mels: int = N_MELS) -> Tensor:
    """The encoders' log-mel (dB) of one waveform `(T,)`: `(n_mels, frames)`, on the CPU."""
    return log_mel(wave.detach().float().cpu()[None], rate, n_mels=n_mels)[0]  # (n_mels, frames)


HOVER_DB = "t %{x:.2f} s, mel bin %{y}: %{z:.1f} dB<extra></extra>"


def spectrogram_figure(wave: Tensor | np.ndarray, rate: int = SAMPLE_RATE, n_mels: int = N_MELS,
                       title: str = "Log-mel spectrogram") -> go.Figure:
    """A log-mel spectrogram heatmap (dB) with time in seconds and mel bin on the axes.

    The matrix is `LogMel(rate, n_mels=n_mels)(wave[None])[0]`: what an audio encoder sees.

    Args:
        wave: one waveform `(T,)`.
        rate: sample rate in Hz.
        n_mels: number of mel bins (default: the encoders').
        title: figure title.
    Returns:
        A plotly Figure.
    """
    wave = torch.as_tensor(np.asarray(wave)) if not isinstance(wave, Tensor) else wave
    check_tensor("wave", wave, ndim=1, what="of shape (T,)")
    rate = int(check_positive("rate", rate))
    S = clip_log_mel(wave, rate, n_mels)  # (n_mels, frames)
    t = np.arange(S.shape[1]) * HOP_LENGTH / rate  # frame start times (s)
    fig = go.Figure(go.Heatmap(z=S.numpy(), x=t, y=np.arange(n_mels), colorscale="Viridis",
                               colorbar=dict(title="power (dB)"), hovertemplate=HOVER_DB))
    fig.update_layout(title=title, xaxis_title="time (s)",
                      yaxis_title="mel bin (index, low → high frequency)",
                      height=300, margin=dict(l=60, r=20, t=50, b=50))
    return fig


def spectrogram_grid(waves: Tensor, titles: list[str], rate: int = SAMPLE_RATE,
                     n_mels: int = N_MELS, ncols: int = 3,
                     title: str = "Log-mel spectrograms") -> go.Figure:
    """Log-mel spectrograms (dB) of several clips side by side, on one shared colour scale.

    Args:
        waves: float `(B, T)` waveforms.
        titles: B strings, one per panel (e.g. the speaker).
        rate: sample rate in Hz.
        n_mels: number of mel bins.
        ncols: panels per row.
        title: figure title.
    Returns:
        A plotly Figure; hovering shows time, mel bin and power.
    """
    check_tensor("waves", waves, ndim=2, what="of shape (B, T) (a batch of mono waveforms)")
    rate = int(check_positive("rate", rate))
    check_int("ncols", ncols)
    if len(titles) != waves.shape[0]:
        raise ValueError(f"`titles` has {len(titles)} entries for {waves.shape[0]} waveforms; "
                         "pass one per clip.")
    specs = [clip_log_mel(w, rate, n_mels).numpy() for w in waves]  # B × (n_mels, frames)
    lo, hi = min(float(S.min()) for S in specs), max(float(S.max()) for S in specs)
    ncols = min(ncols, len(specs))
    nrows = -(-len(specs) // ncols)
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.25 / nrows)
    for k, S in enumerate(specs):
        t = np.arange(S.shape[1]) * HOP_LENGTH / rate  # frame start times (s)
        fig.add_trace(go.Heatmap(z=S, x=t, y=np.arange(n_mels), zmin=lo, zmax=hi,
                                 colorscale="Viridis", showscale=k == 0,
                                 colorbar=dict(title="power (dB)"), hovertemplate=HOVER_DB),
                      row=k // ncols + 1, col=k % ncols + 1)
    for c in range(1, ncols + 1):
        fig.update_xaxes(title_text="time (s)", row=nrows, col=c)
    for r in range(1, nrows + 1):
        fig.update_yaxes(title_text="mel bin", row=r, col=1)
    fig.update_layout(title=title, height=230 * nrows + 80, margin=dict(l=60, r=20, t=80, b=50))
    return fig


def wav_bytes(wave: Tensor, rate: int = SAMPLE_RATE) -> bytes:
    """One waveform `(T,)` as the bytes of a 16-bit PCM WAV file (for players and widgets)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave.detach().float().cpu().numpy(), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def audio_players(waves: Tensor, labels: list[str], rate: int = SAMPLE_RATE) -> str:
    """HTML: one labelled `<audio>` player per waveform of `(B, T)`, embedded as WAV (no files,
    no network)."""
    import base64

    check_tensor("waves", waves, ndim=2, what="of shape (B, T) (a batch of mono waveforms)")
    check_int("rate", rate)
    if len(labels) != waves.shape[0]:
        raise ValueError(f"`labels` has {len(labels)} entries for {waves.shape[0]} waveforms; "
                         "pass one per clip.")
    cells = []
    for wave, label in zip(waves, labels):
        data = base64.b64encode(wav_bytes(wave, rate)).decode("ascii")
        cells.append('<div style="display:inline-block;margin:4px 12px 4px 0">'
                     f'<b>{html.escape(label)}</b><br>'
                     f'<audio controls preload="none" src="data:audio/wav;base64,{data}"></audio>'
                     '</div>')
    return "".join(cells)


def show_batch(batch: dict[str, Any], n: int = 8, rate: int = SAMPLE_RATE) -> go.Figure | None:
    """Display the first `n` samples of a batch in a notebook: image grid, captions, audio players.

    Args:
        batch: a batch dict (see docs/DESIGN.md).
        n: how many samples to show.
        rate: audio sample rate in Hz.
    Returns:
        The image-grid Figure (or None for a batch without images).
    """
    from IPython.display import HTML, display

    check_int("n", n)
    if "index" not in batch:
        raise ValueError(f"`batch` must be a batch dict with an 'index' entry; "
                         f"got keys {sorted(batch)}.")
    m = min(n, len(batch["index"]))
    text = batch.get("text")
    fig = None
    if "image" in batch:
        if text is not None:
            captions = list(text[:m])
        else:
            captions = [f"#{int(i)}" for i in batch["index"][:m]]
        fig = image_grid(batch["image"][:m], captions, ncols=min(m, 8),
                         title=f"First {m} samples of the batch")
        display(fig)
    if "audio" in batch:
        for k in range(m):
            label = text[k] if text is not None else f"sample {int(batch['index'][k])}"
            display(HTML(f"<b>#{int(batch['index'][k])}</b> {label}"),
                    audio_player(batch["audio"][k], rate))
    if "image" not in batch and "audio" not in batch:
        rows = []
        for k in range(m):
            cells = [f"{key}={batch[key][k].tolist()}" for key in batch
                     if isinstance(batch[key], Tensor) and key != "index"]
            rows.append(f"#{int(batch['index'][k])}: " + ", ".join(cells))
        display(HTML("<br>".join(rows)))
    return fig
