"""MeshSmileNet and DeepMarkerNet: smile-veracity classifiers on face-landmark clips.

x (b, t, v, c) landmarks of t frames -> per-frame point encoder (CurveNet, or a linear point
embedding for the ablation) -> Dropout -> 1x1 mix of the v landmarks into w virtual landmarks
(no bias) + BatchNorm -> ``depth`` pre-LN transformer layers alternating attention over frames
(per virtual landmark) and over virtual landmarks (per frame) -> mean over the virtual landmarks
-> ``temporal_depth`` layers over frames -> mean over the real frames -> LayerNorm -> Linear heads:
a class logit (spontaneous = 1; the sigmoid belongs to the loss) and, for DeepMarkerNet, the
standardised D-Marker descriptors.

The linear ablation mixes the coordinates first and embeds the w virtual points: a per-point
linear map commutes with the mix, so this is the published order (embed, then mix) for v / w times
less work but for the embedding's bias, which each virtual point gets once instead of weighted by
its mix row's sum. The BatchNorm after the mix absorbs that: a mix row divided by its sum gives
the published order's output there, so the function class is the same (rows summing to zero
aside). Its dropout acts on the w virtual points.

Padding frames (mask False) never reach the point encoder (so they do not enter its BatchNorm
statistics either), are never attended to and are left out of the temporal mean: a padded clip
gives the same outputs as the clip without its padding.

Deliberate differences from the published code: padding is masked (it fed zero frames); the
landmark count comes from the data (478 was hard-coded); logits are returned (it applied a
sigmoid before BCELoss); each attention layer adds the sinusoidal table of its axis to its
normalised input once (it added x + Dropout(x + table), doubling the input); the D-Marker head is
a Linear on the same LayerNorm-ed pooled feature as the class head.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from models.config import ModelConfig
from models.curvenet import CurveNet
from models.layers import TransformerBlock, masked_mean, sinusoidal_positions

#: D-Markers the regression head predicts: 3 regions x 3 phases x 25 descriptors (the count of
#: data.dmarker.N_DMARKERS; models do not import data).
N_DMARKERS = 225


class SmileOutput(NamedTuple):
    logits: Tensor  # (b,) class logit, spontaneous = 1
    dmarkers: Tensor | None  # (b, n_dmarkers) D-Marker prediction, None for MeshSmileNet


class SmileNet(nn.Module):
    """The shared network; ``n_dmarkers`` > 0 adds the D-Marker regression head."""

    def __init__(self, *, config: ModelConfig, n_landmarks: int, n_dmarkers: int = 0):
        super().__init__()
        cfg = config
        self.n_landmarks = n_landmarks
        self.in_channels = cfg.in_channels
        self.input_norm = nn.BatchNorm1d(n_landmarks * cfg.in_channels) if cfg.input_norm else None
        if cfg.point_encoder == "curvenet":
            self.encoder = CurveNet(
                in_channels=cfg.in_channels,
                k=cfg.k,
                lpfa_dim=cfg.lpfa_dim,
                cic_dims=cfg.cic_dims,
                cic_bottlenecks=cfg.cic_bottlenecks,
                cic_curves=cfg.cic_curves,
                curve_length=cfg.curve_length,
                out_dim=cfg.dim,
            )
        else:
            self.encoder = nn.Linear(cfg.in_channels, cfg.dim)
        self.encoder_dropout = nn.Dropout(cfg.encoder_dropout)
        self.mix = nn.Linear(n_landmarks, cfg.virtual_landmarks, bias=False)
        self.mix_norm = nn.BatchNorm1d(cfg.virtual_landmarks)

        def block() -> TransformerBlock:
            return TransformerBlock(
                dim=cfg.dim,
                heads=cfg.heads,
                dim_head=cfg.dim_head,
                mlp_dim=cfg.mlp_dim,
                dropout=cfg.dropout,
            )

        axes = {"alternate": ("time", "landmarks"), "time": ("time",), "landmarks": ("landmarks",)}
        self.axes = [axes[cfg.attention][i % len(axes[cfg.attention])] for i in range(cfg.depth)]
        self.space_time = nn.ModuleList(block() for _ in range(cfg.depth))
        self.temporal = nn.ModuleList(block() for _ in range(cfg.temporal_depth))
        self.norm = nn.LayerNorm(cfg.dim)
        self.classifier = nn.Linear(cfg.dim, 1)
        self.dmarker_head = nn.Linear(cfg.dim, n_dmarkers) if n_dmarkers else None

    def forward(self, x: Tensor, mask: Tensor | None = None) -> SmileOutput:
        """x (b, t, v, c) landmarks; mask (b, t) bool, True = real frame (None: all real)."""
        b, t, v, c = self._check(x, mask)
        if mask is None:
            mask = torch.ones(b, t, dtype=torch.bool, device=x.device)
        frames = x[mask]  # (f, v, c): the real frames only
        points = frames if self.input_norm is None else self._standardised(frames)
        if isinstance(self.encoder, CurveNet):
            feats = self.encoder(frames, points)  # graph from the geometry, features from points
            feats = self.encoder_dropout(feats)  # (f, v, d)
            feats = torch.einsum("fvd,wv->fwd", feats, self.mix.weight)  # (f, w, d)
        else:  # a per-point linear map commutes with the mix: mix the coordinates first
            feats = self.encoder(torch.einsum("fvc,wv->fwc", points, self.mix.weight))
            feats = self.encoder_dropout(feats)  # (f, w, d)
        feats = self.mix_norm(feats)
        w, d = feats.shape[1:]
        tokens = feats.new_zeros(b, t, w, d, dtype=torch.float32)  # the residual stream: fp32
        tokens[mask] = feats.float()  # (b, t, w, d), zeros at padding frames
        time_pos = sinusoidal_positions(t, d, device=x.device)
        landmark_pos = sinusoidal_positions(w, d, device=x.device)
        time_mask = repeat(mask, "b t -> (b w) t", w=w)
        for layer, axis in zip(self.space_time, self.axes, strict=True):
            if axis == "time":
                h = rearrange(tokens, "b t w d -> (b w) t d")
                h = layer(h, time_pos, time_mask)
                tokens = rearrange(h, "(b w) t d -> b t w d", b=b)
            else:
                h = rearrange(tokens, "b t w d -> (b t) w d")
                tokens = rearrange(layer(h, landmark_pos), "(b t) w d -> b t w d", b=b)
        frame_tokens = tokens.mean(2)  # (b, t, d)
        for layer in self.temporal:
            frame_tokens = layer(frame_tokens, time_pos, mask)
        with torch.autocast(x.device.type, enabled=False):  # heads in fp32: bf16 logits are coarse
            pooled = self.norm(masked_mean(frame_tokens.float(), mask))  # (b, d)
            logits = self.classifier(pooled).squeeze(-1)
            dmarkers = None if self.dmarker_head is None else self.dmarker_head(pooled)
        return SmileOutput(logits=logits, dmarkers=dmarkers)

    def _standardised(self, frames: Tensor) -> Tensor:
        """frames (f, v, c) through the input BatchNorm; a training batch of one real frame (a
        last partial batch of a very short video: no variance to measure) takes its running
        statistics instead of failing."""
        flat, norm = frames.flatten(1), self.input_norm
        if self.training and flat.shape[0] == 1:
            flat = F.batch_norm(
                flat, norm.running_mean, norm.running_var, norm.weight, norm.bias, eps=norm.eps
            )
        else:
            flat = norm(flat)
        return flat.view_as(frames)

    def _check(self, x: Tensor, mask: Tensor | None) -> tuple[int, int, int, int]:
        if x.dim() != 4 or x.shape[2:] != (self.n_landmarks, self.in_channels):
            raise ValueError(
                f"model input: expected (batch, frames, {self.n_landmarks}, {self.in_channels}) "
                f"landmarks, got {tuple(x.shape)}: build the model with the data's landmark count"
            )
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != x.shape[:2]:
                raise ValueError(
                    f"model mask: expected bool {tuple(x.shape[:2])} (True = real frame), "
                    f"got {mask.dtype} {tuple(mask.shape)}"
                )
            if not bool(mask.any(1).all()):
                raise ValueError("model mask: every clip needs at least one real frame")
        return tuple(x.shape)


class DeepMarkerNet(SmileNet):
    """Class logit plus a regression head of the D-Marker descriptors (Duchenne markers)."""

    def __init__(self, *, config: ModelConfig, n_landmarks: int, n_dmarkers: int = N_DMARKERS):
        if n_dmarkers < 1:
            raise ValueError(f"DeepMarkerNet needs n_dmarkers >= 1, got {n_dmarkers}")
        super().__init__(config=config, n_landmarks=n_landmarks, n_dmarkers=n_dmarkers)


class MeshSmileNet(SmileNet):
    """Class logit only (``dmarkers`` is None)."""

    def __init__(self, *, config: ModelConfig, n_landmarks: int):
        super().__init__(config=config, n_landmarks=n_landmarks, n_dmarkers=0)


def build_model(cfg: ModelConfig, n_landmarks: int, n_dmarkers: int = N_DMARKERS) -> SmileNet:
    """The model named by ``cfg.name`` for clips of ``n_landmarks`` points per frame."""
    cfg.validate()
    if cfg.name not in ("deepmarkernet", "meshsmilenet"):
        raise ValueError(f"model.name {cfg.name}: not a network (see training/baseline.py)")
    if n_landmarks < 1:
        raise ValueError(f"n_landmarks = {n_landmarks}: the data has no landmarks")
    if cfg.point_encoder == "curvenet" and n_landmarks <= cfg.k:
        raise ValueError(
            f"model.k = {cfg.k} neighbours need more than {cfg.k} landmarks, the data has "
            f"{n_landmarks}: lower model.k"
        )
    if cfg.name == "deepmarkernet":
        return DeepMarkerNet(config=cfg, n_landmarks=n_landmarks, n_dmarkers=n_dmarkers)
    return MeshSmileNet(config=cfg, n_landmarks=n_landmarks)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
