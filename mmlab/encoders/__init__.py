"""Encoders (vision, audio, text) and projection heads (`mmlab.model` puts them together).

Every encoder maps a batch of one modality to features `(B, out_dim)` and has `out_dim: int`.
Transformer encoders (`ViTEncoder`, `AudioTransformer`, `TextTransformer`) take
`return_attention=True` to also return a list of per-layer attention maps `(B, heads, T, T)`,
kept in the autograd graph for attribution. See docs/DESIGN.md.
"""

from __future__ import annotations

from mmlab.encoders.attention import CLSTransformer, MultiHeadSelfAttention, TransformerBlock
from mmlab.encoders.audio import AudioConvEncoder, AudioTransformer, LogMel, log_mel
from mmlab.encoders.heads import ProjectionHead
from mmlab.encoders.momentum import MomentumEncoder, ema_update_
from mmlab.encoders.pretokenize import pretokenize
from mmlab.encoders.sentence import SentenceEncoder
from mmlab.encoders.text import BagOfWordsEncoder, TextTransformer
from mmlab.encoders.tokenizer import CLS, PAD, UNK, Tokenizer
from mmlab.encoders.vision import ConvEncoder, MLPEncoder, ResNetEncoder, ViTEncoder

__all__ = [
    "ConvEncoder", "MLPEncoder", "ResNetEncoder", "ViTEncoder",
    "log_mel", "LogMel", "AudioConvEncoder", "AudioTransformer",
    "Tokenizer", "TextTransformer", "BagOfWordsEncoder", "SentenceEncoder", "PAD", "UNK", "CLS",
    "pretokenize",
    "MultiHeadSelfAttention", "TransformerBlock", "CLSTransformer",
    "MomentumEncoder", "ema_update_",
    "ProjectionHead",
]

