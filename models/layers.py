"""Layers shared by the models: pre-LN transformer block, sinusoidal positions, masked pooling.

Axis names: b batch, t frames, v landmarks, d features; ``s`` is whichever axis a block attends
over (frames or landmarks).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def sinusoidal_positions(n: int, dim: int, *, device=None) -> Tensor:
    """Fixed positional table (n, dim): feature 2i = sin(p w_i), 2i+1 = cos(p w_i),
    w_i = 10000^(-2i / dim), positions p = 0 .. n-1 (Vaswani et al.)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    angles = pos * freq  # (n, ceil(dim / 2))
    table = torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(1)[:, :dim]
    return table


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over axis 1 of x (b, s, d) using only the positions where mask (b, s) is True."""
    weights = mask.to(x.dtype).unsqueeze(-1)  # (b, s, 1)
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class Attention(nn.Module):
    """Multi-head self-attention over axis 1 of x (n, s, d); keys where key_mask is False
    (padding frames) get zero weight."""

    def __init__(self, *, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads = heads
        inner = heads * dim_head
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor, key_mask: Tensor | None = None) -> Tensor:
        qkv = self.to_qkv(x)  # (n, s, 3 h e)
        q, k, v = rearrange(qkv, "n s (three h e) -> three n h s e", three=3, h=self.heads)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # (n, 1, 1, s)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.to_out(rearrange(out, "n h s e -> n s (h e)"))


class TransformerBlock(nn.Module):
    """Pre-LN transformer layer: x + Attn(LN(x) + pos), then x + MLP(LN(x)) with a GELU MLP.

    ``pos`` (s, d) is the sinusoidal table of the attended axis, added to the normalised input of
    every attention layer as the published model does (without its doubling of the input).
    """

    def __init__(self, *, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = Attention(dim=dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor, pos: Tensor, key_mask: Tensor | None = None) -> Tensor:
        """x (n, s, d), pos (s, d), key_mask (n, s) bool or None -> (n, s, d)."""
        h = self.norm_attn(x)
        x = x + self.attn(h + pos.to(h.dtype), key_mask)
        return x + self.mlp(self.norm_mlp(x))
