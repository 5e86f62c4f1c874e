"""Audio encoders on log-mel spectrograms: `log_mel`/`LogMel`, a stride-2 CNN, a frame transformer.

A waveform `(B, T)` at 16 kHz becomes a log-mel spectrogram `(B, n_mels, frames)` (Davis &
Mermelstein, 1980; Hann window of n_fft = 400 samples = 25 ms, hop 160 = 10 ms, 40 mel bands):

    S = mel_fb · |STFT(w)|²,   dB = 10·log10(max(S, 1e-10)),   dB ← max(dB, max(dB) − top_db)

with the `top_db` floor taken *per sample* (torchaudio's `AmplitudeToDB` takes it over the whole
batch of a 3-D input, so a quiet clip would depend on its neighbours). `frames = 1 + T // hop`.
`log_mel` is the one implementation: the `LogMel` module (inside every audio encoder) and the
spectrogram previews of `mmlab.viz` call it with the same defaults, so a preview shows exactly
what an encoder computes. The encoders standardise each spectrogram (zero mean, unit variance
over mels × frames) before use.

- `AudioConvEncoder`: the spectrogram as a 1-channel image through `ConvEncoder` (stride-2 convs).
- `AudioTransformer`: groups of `frame_stride` frames as tokens, a CLS token, learned positions
  (as in AST, Gong et al., 2021, "AST: Audio Spectrogram Transformer", with time-only patches).

Per-frame gradients for attribution (AudioTransformer)::

    spec = model.logmel(wave).detach().requires_grad_()   # (B, n_mels, frames)
    z, attentions = model.forward_spectrogram(spec, return_attention=True)
    g, = torch.autograd.grad(score(z), spec)              # (B, n_mels, frames)

Token `i ≥ 1` of the attention maps covers frames `model.token_frames(i)`; token 0 is CLS.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab._checks import check_int, check_positive, check_tensor
from mmlab.data import SAMPLE_RATE
from mmlab.encoders.attention import CLSTransformer
from mmlab.encoders.vision import ConvEncoder

AMIN = 1e-10  # floor of the power spectrogram before the log (-100 dB)
N_FFT, HOP_LENGTH, N_MELS, TOP_DB = 400, 160, 40, 80.0  # 25 ms window, 10 ms hop at 16 kHz


def check_waveform(name: str, x: object, n_fft: int) -> Tensor:
    """Check a waveform batch: float (B, T) with T > n_fft // 2 (needed by the centred STFT)."""
    check_tensor(name, x, ndim=2, what="of shape (B, T) (a batch of mono waveforms)")
    if x.shape[1] <= n_fft // 2:
        raise ValueError(f"`{name}` has {x.shape[1]} samples per clip (shape {tuple(x.shape)}); "
                         f"the STFT with n_fft={n_fft} needs more than {n_fft // 2}. Pad the clips "
                         "or use a smaller n_fft.")
    return x


def check_spectrogram(name: str, x: object, n_mels: int) -> Tensor:
    """Check a spectrogram batch: float (B, n_mels, frames)."""
    check_tensor(name, x, ndim=3, what=f"of shape (B, n_mels={n_mels}, frames)")
    if x.shape[1] != n_mels:
        raise ValueError(f"`{name}` must have n_mels={n_mels} rows, shape (B, {n_mels}, frames); "
                         f"got shape {tuple(x.shape)}. Build the encoder with "
                         f"n_mels={x.shape[1]} or fix the LogMel.")
    return x


def standardize(spec: Tensor, eps: float = 1e-5) -> Tensor:
    """Per-sample standardisation of (B, n_mels, frames): zero mean, unit variance."""
    mean = spec.mean(dim=(1, 2), keepdim=True)  # (B, 1, 1)
    std = spec.std(dim=(1, 2), keepdim=True, unbiased=False)  # (B, 1, 1)
    return (spec - mean) / (std + eps)  # (B, n_mels, frames)


def log_mel(wave: Tensor, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
            hop_length: int = HOP_LENGTH, n_mels: int = N_MELS, top_db: float | None = TOP_DB,
            f_min: float = 0.0, f_max: float | None = None, *, window: Tensor | None = None,
            filterbank: Tensor | None = None) -> Tensor:
    """Log-mel spectrogram in dB of a batch of waveforms (the formula of the module docstring).

    Args:
        wave: (B, T) float waveforms at `sample_rate` Hz.
        sample_rate, n_fft, hop_length, n_mels: STFT and mel settings (defaults: the encoders').
        top_db: dynamic range kept below each sample's maximum (None: no floor).
        f_min, f_max: mel band limits in Hz (f_max None = sample_rate / 2).
        window: the (n_fft,) analysis window (default: Hann); `LogMel` passes its buffer.
        filterbank: the (n_fft // 2 + 1, n_mels) mel filterbank (default: HTK mel, from
            torchaudio); `LogMel` passes its buffer.
    Returns:
        (B, n_mels, 1 + T // hop_length) in dB.
    """
    import torchaudio.functional as AF

    check_waveform("wave", wave, n_fft)
    if window is None:
        window = torch.hann_window(n_fft).to(wave.device, wave.dtype)  # (n_fft,)
    if filterbank is None:
        f_max = float(sample_rate // 2) if f_max is None else f_max
        filterbank = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate)
        filterbank = filterbank.to(wave.device, wave.dtype)  # (n_fft // 2 + 1, n_mels)
    power = AF.spectrogram(wave, 0, window, n_fft, hop_length, n_fft, 2.0, False)  # (B, F, frames)
    mel = torch.matmul(power.transpose(-1, -2), filterbank).transpose(-1, -2)  # (B, n_mels, frames)
    db = 10.0 * torch.log10(mel.clamp(min=AMIN))  # (B, n_mels, frames)
    if top_db is not None:
        floor = db.amax(dim=(1, 2), keepdim=True) - top_db  # (B, 1, 1)
        db = torch.maximum(db, floor)
    return db


class LogMel(nn.Module):
    """`log_mel` as a module: its window and filterbank are buffers (they follow `.to()`).

    Args:
        sample_rate: Hz.
        n_fft: FFT size (400 = 25 ms at 16 kHz).
        hop_length: hop (160 = 10 ms at 16 kHz).
        n_mels: mel bands.
        top_db: dynamic range kept below each sample's maximum (None: no floor).
        f_min, f_max: mel band limits in Hz (f_max None = sample_rate / 2).
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                 hop_length: int = HOP_LENGTH, n_mels: int = N_MELS,
                 top_db: float | None = TOP_DB, f_min: float = 0.0,
                 f_max: float | None = None) -> None:
        super().__init__()
        import torchaudio

        for n, v in (("sample_rate", sample_rate), ("n_fft", n_fft), ("hop_length", hop_length),
                     ("n_mels", n_mels)):
            check_int(n, v)
        if top_db is not None:
            check_positive("top_db", top_db)
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels, self.top_db = (
            sample_rate, n_fft, hop_length, n_mels, top_db)
        # torchaudio's transform holds the buffers `mel.spectrogram.window` and
        # `mel.mel_scale.fb` (their state_dict keys are what saved checkpoints contain)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
            f_min=f_min, f_max=f_max, power=2.0)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of `num_samples` samples (centred STFT)."""
        return 1 + num_samples // self.hop_length

    def forward(self, wave: Tensor) -> Tensor:
        """Args: wave (B, T) float. Returns: log-mel (B, n_mels, 1 + T // hop_length) in dB."""
        return log_mel(wave, self.sample_rate, self.n_fft, self.hop_length, self.n_mels,
                       self.top_db, window=self.mel.spectrogram.window,
                       filterbank=self.mel.mel_scale.fb)


class AudioConvEncoder(nn.Module):
    """LogMel → per-sample standardisation → `ConvEncoder(in_channels=1)` on (B, 1, mels, T').

    Args:
        out_dim: feature width D.
        n_mels: mel bands.
        width: conv channels.
        depth: conv layers.
        sample_rate, n_fft, hop_length: passed to `LogMel`.
    """

    def __init__(self, out_dim: int = 128, n_mels: int = N_MELS, width: int = 32, depth: int = 3,
                 sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT,
                 hop_length: int = HOP_LENGTH) -> None:
        super().__init__()
        self.out_dim, self.n_mels = out_dim, n_mels
        self.logmel = LogMel(sample_rate, n_fft, hop_length, n_mels)
        self.cnn = ConvEncoder(out_dim, width, depth, in_channels=1)

    def forward_spectrogram(self, spec: Tensor) -> Tensor:
        """Args: spec (B, n_mels, frames) log-mel in dB. Returns: (B, out_dim)."""
        check_spectrogram("spec", spec, self.n_mels)
        return self.cnn(standardize(spec)[:, None])  # (B, out_dim)

    def forward(self, wave: Tensor) -> Tensor:
        """Args: wave (B, T) float. Returns: (B, out_dim)."""
        return self.forward_spectrogram(self.logmel(wave))


class AudioTransformer(nn.Module):
    """Frame-group tokens → [CLS] + positions → transformer blocks → CLS feature.

    Token i (i = 1..N) is the flattened block of frames `[(i-1)·s, i·s)` (s = `frame_stride`),
    n_mels·s numbers, through `nn.Linear(n_mels·s, dim)`. The last block is zero-padded
    (zero = the mean after standardisation).

    Args:
        n_mels: mel bands.
        dim: token width.
        depth: transformer blocks.
        heads: attention heads.
        out_dim: feature width D.
        frame_stride: frames per token (4 = 40 ms at hop 160).
        max_frames: longest spectrogram accepted (256 frames ≈ 2.5 s at hop 160).
        sample_rate, n_fft, hop_length: passed to `LogMel`.
        mlp_ratio, dropout: transformer block settings.
    """

    def __init__(self, n_mels: int = N_MELS, dim: int = 64, depth: int = 2, heads: int = 4,
                 out_dim: int = 64, frame_stride: int = 4, max_frames: int = 256,
                 sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                 mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        check_int("frame_stride", frame_stride)
        check_int("max_frames", max_frames)
        self.n_mels, self.dim, self.out_dim = n_mels, dim, out_dim
        self.frame_stride, self.max_frames = frame_stride, max_frames
        self.logmel = LogMel(sample_rate, n_fft, hop_length, n_mels)
        self.frame_embedding = nn.Linear(n_mels * frame_stride, dim)
        max_tokens = math.ceil(max_frames / frame_stride)
        self.transformer = CLSTransformer(dim, depth, heads, out_dim, max_tokens, mlp_ratio,
                                          dropout)

    def token_frames(self, token: int) -> range:
        """The spectrogram frames covered by attention token `token` (≥ 1; 0 is CLS)."""
        return range((token - 1) * self.frame_stride, token * self.frame_stride)

    def embed(self, spec: Tensor) -> Tensor:
        """Token embeddings (B, N, dim), N = ceil(frames / frame_stride), of a log-mel
        (B, n_mels, frames)."""
        check_spectrogram("spec", spec, self.n_mels)
        B, M, n_frames = spec.shape
        if n_frames > self.max_frames:
            raise ValueError(f"`spec` has {n_frames} frames but this AudioTransformer accepts at "
                             f"most max_frames={self.max_frames}; crop the audio or build it "
                             "with a larger max_frames.")
        s = self.frame_stride
        x = standardize(spec)  # (B, M, F)
        x = F.pad(x, (0, (-n_frames) % s))  # (B, M, N·s)
        n_tokens = x.shape[-1] // s
        x = x.view(B, M, n_tokens, s).permute(0, 2, 1, 3)  # (B, N, M, s)
        x = x.reshape(B, n_tokens, M * s)  # (B, N, M·s)
        return self.frame_embedding(x)  # (B, N, dim)

    def forward_tokens(self, tokens: Tensor, return_attention: bool = False,
                       ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Run the transformer on token embeddings (B, N, dim) from `embed`."""
        return self.transformer(tokens, None, return_attention)

    def forward_spectrogram(self, spec: Tensor, return_attention: bool = False,
                            ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode a log-mel (B, n_mels, frames); with `return_attention`, also the attention."""
        return self.forward_tokens(self.embed(spec), return_attention)

    def forward(self, wave: Tensor, return_attention: bool = False,
                ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Encode waveforms.

        Args:
            wave: (B, T) float at `logmel.sample_rate`.
            return_attention: also return attention (B, heads, N+1, N+1) per layer.
        Returns:
            features (B, out_dim), or `(features, attentions)`.
        """
        return self.forward_spectrogram(self.logmel(wave), return_attention)
