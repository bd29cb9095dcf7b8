"""CurveNet relativity encoder (Xiang et al., ICCV 2021) as MeshSmileNet uses it: per frame, on
the face landmarks as a point cloud, without down-sampling.

LPFA (edge features [p_i, p_j, p_j - p_i] -> 32, max over k = 20 neighbours), four CIC blocks
(bottleneck Linear -> curve grouping + curve aggregation (first two blocks) -> LPFA -> Linear,
with a residual), then Linear + BatchNorm + ReLU to the output width.

Vectorised over every cloud of the batch (n = b x t frames):
- The k-NN graph is built once per cloud in one batched call and shared by all blocks. This is
  exact: without down-sampling the published code rebuilds the same graph from the same
  coordinates in every block. Its ball radii (0.08 / 0.16) only act in the down-sampling step,
  which never runs, so they are not parameters here.
- Per-point features are rows of (N, d), N = n x v; a 1x1 convolution + BatchNorm of the published
  code is a Linear on the last axis + ``RowNorm``; gathers index these rows directly (cloud offsets
  added once to the graph).
- LPFA never builds its (N, k, 9) geometric edge tensor nor normalises one (``LPFA``).
- Curve walks run for all clouds and all curves at once; only the few walk steps loop.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LEAK = 0.2  # LeakyReLU slope used throughout CurveNet


class RowNorm(nn.BatchNorm2d):
    """BatchNorm over the last axis of x (..., d), every leading position one sample, then an
    optional LeakyReLU of slope ``leak`` (0 = ReLU) in place.

    It runs on x viewed as an (M, d, 1, 1) image, which is channels-last: PyTorch's CPU kernels are
    several times faster and steadier on that than on an (M, d) matrix (the backward above all).
    """

    def __init__(self, dim: int, *, leak: float | None = None):
        super().__init__(dim)
        self.leak = leak

    def forward(self, x: Tensor) -> Tensor:
        y = super().forward(x.reshape(-1, x.shape[-1], 1, 1))
        if self.leak is not None:
            y = F.leaky_relu_(y, self.leak)
        return y.view(x.shape)


def row_block(in_dim: int, out_dim: int, leak: float | None = None) -> nn.Sequential:
    """Linear without bias + RowNorm: the published 1x1 convolution + BatchNorm (+ activation)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=False), RowNorm(out_dim, leak=leak))


class Geometry(NamedTuple):
    """The fixed neighbourhood structure of n clouds of v points, rows N = n x v."""

    xyz: Tensor  # (N, c) point coordinates
    nbrs: Tensor  # (N, k) rows of the point itself and its k - 1 nearest neighbours (LPFA)
    nbr_sum: Tensor  # (N, c) sum of the coordinates over nbrs
    in_degree: Tensor  # (N, 1) float, how often each row appears in nbrs
    adj: Tensor  # (N, k) rows of the k nearest neighbours, the point excluded (curve walks)
    v: int  # points per cloud


def knn_graph(xyz: Tensor, k: int) -> Tensor:
    """k-NN graph of n clouds in one batched call.

    xyz (n, v, c) -> (n * v, k + 1) int64 rows into ``xyz.reshape(n * v, c)``: column 0 is the
    point itself, then its k nearest neighbours by Euclidean distance, nearest first.
    """
    n, v, _ = xyz.shape
    if k + 1 > v:
        raise ValueError(f"model.k = {k} needs at least {k + 1} landmarks per frame, got {v}")
    with torch.no_grad(), torch.autocast(xyz.device.type, enabled=False):
        p = xyz.float()
        p = p - p.mean(1, keepdim=True)  # centred: smaller rounding error in 2ab - |a|^2 - |b|^2
        sq = (p * p).sum(-1)  # (n, v)
        closeness = torch.baddbmm(
            sq[:, :, None] + sq[:, None, :], p, p.transpose(1, 2), beta=-1.0, alpha=2.0
        )  # (n, v, v) minus squared distance
        closeness.diagonal(dim1=1, dim2=2).fill_(1.0)  # the point itself first, even among twins
        idx = closeness.topk(k + 1, dim=-1).indices  # (n, v, k + 1)
        return (idx + torch.arange(n, device=xyz.device).view(n, 1, 1) * v).reshape(n * v, k + 1)


def geometry(xyz: Tensor, k: int, points: Tensor | None = None) -> Geometry:
    """Neighbourhoods of the clouds xyz (n, v, c), shared by every block. The k-NN graph comes
    from ``xyz``; the per-point coordinates the blocks see are ``points`` (n, v, c) if given
    (e.g. standardised coordinates), else ``xyz``."""
    n, v, c = xyz.shape
    graph = knn_graph(xyz, k)
    points = (xyz if points is None else points).reshape(n * v, c)
    nbrs = graph[:, :k]
    in_degree = torch.bincount(nbrs.reshape(-1), minlength=n * v).to(points.dtype)
    nbr_sum = points[nbrs].sum(1)  # differentiable: the edge BatchNorm's variance depends on it
    return Geometry(points, nbrs, nbr_sum, in_degree.unsqueeze(1), graph[:, 1:], v)


def edge_norm_affine(
    bn: RowNorm, a: Tensor, b: Tensor, b_nbr_sum: Tensor, geo: Geometry
) -> tuple[Tensor, Tensor]:
    """Per-feature scale and shift (d,) that BatchNorm ``bn`` applies to the edge values
    g_ij = a_i + b_j (j in nbrs of i), with the batch statistics over all N x k edges computed
    from per-point sums, without building the (N, k, d) edge tensor (the running statistics are
    updated as nn.BatchNorm does). a, b (N, d); b_nbr_sum (N, d) = sum of b_j over nbrs of i.
    """
    if bn.training:
        n_edges, k = geo.nbrs.numel(), geo.nbrs.shape[1]
        a, b, b_nbr_sum = a.float(), b.float(), b_nbr_sum.float()
        a_mean = a.mean(0)
        b_mean = (geo.in_degree * b).sum(0) / n_edges
        da, db = a - a_mean, b - b_mean
        # sum over edges of (da_i + db_j)^2, the cross term through the neighbour sums
        sq = k * (da * da).sum(0) + 2 * (da * (b_nbr_sum - k * b_mean)).sum(0)
        var = ((sq + (geo.in_degree * db * db).sum(0)) / n_edges).clamp_min(0.0)
        mean = a_mean + b_mean
        with torch.no_grad():
            bn.num_batches_tracked += 1
            momentum = bn.momentum if bn.momentum is not None else 1.0 / bn.num_batches_tracked
            bn.running_mean.lerp_(mean, momentum)
            bn.running_var.lerp_(var * n_edges / max(n_edges - 1, 1), momentum)
    else:
        mean, var = bn.running_mean, bn.running_var
    scale = bn.weight * torch.rsqrt(var + bn.eps)
    return scale, bn.bias - mean * scale


class LPFA(nn.Module):
    """Local point feature aggregation over the edges i -> j (j in nbrs of i).

    The edge feature [p_i, p_j, p_j - p_i] (3c values) goes through Linear(3c -> d) + BatchNorm.
    That map is a_i + b_j with a = (W_a - W_c) p, b = (W_b + W_c) p, so it and its batch
    statistics come from per-point values (``edge_norm_affine``), not an (N, k, d) tensor.
    - First LPFA (``point_dim`` None): LeakyReLU, max over the k edges (d = out_dim); as
      LeakyReLU is increasing, that is LeakyReLU(s a_i + t + max_j s b_j) per feature.
    - Inside a CIC block: e_ij = LeakyReLU(x_j - x_i + edge_ij), then Linear(d -> out_dim) +
      BatchNorm + LeakyReLU per edge, mean over the k edges (d = point_dim).
    """

    def __init__(self, *, in_channels: int, out_dim: int, point_dim: int | None = None):
        super().__init__()
        edge_dim = out_dim if point_dim is None else point_dim
        self.edge = nn.Linear(3 * in_channels, edge_dim, bias=False)
        self.edge_norm = RowNorm(edge_dim)  # its parameters, applied by edge_norm_affine
        if point_dim is not None:
            self.mlp = row_block(point_dim, out_dim, LEAK)

    def forward(self, geo: Geometry, x: Tensor | None = None) -> Tensor:
        """Point features x (N, point_dim) or None -> (N, out_dim)."""
        if x is None:  # float32 whatever the autocast: a_i + b_j cancels in bf16; (N, d) is cheap
            with torch.autocast(geo.xyz.device.type, enabled=False):
                a, b, scale, shift = self._edge_terms(geo)
                nbr = b * scale  # (N, d)
                with torch.no_grad():  # which neighbour gives the max, per point and feature
                    best = geo.nbrs.gather(1, nbr[geo.nbrs].max(1).indices)  # (N, d) rows
                return F.leaky_relu(a * scale + shift + nbr.gather(0, best), LEAK)
        a, b, scale, shift = self._edge_terms(geo)
        edge = (x + b * scale)[geo.nbrs]  # (N, k, d): x_j + s b_j
        edge.add_((a * scale + shift - x).unsqueeze(1))  # + s a_i + t - x_i
        out = self.mlp(F.leaky_relu_(edge, LEAK))  # (N, k, out_dim)
        return out.sum(1) / out.shape[1]

    def _edge_terms(self, geo: Geometry) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """a, b (N, d) and the BatchNorm's scale and shift (d,) of the edge values a_i + b_j."""
        w_a, w_b, w_c = self.edge.weight.chunk(3, dim=1)
        w_self, w_nbr = w_a - w_c, w_b + w_c
        a, b = F.linear(geo.xyz, w_self), F.linear(geo.xyz, w_nbr)  # (N, d)
        scale, shift = edge_norm_affine(self.edge_norm, a, b, F.linear(geo.nbr_sum, w_nbr), geo)
        return a, b, scale.to(a.dtype), shift.to(a.dtype)


def crossover_weights(cand: Tensor, feat: Tensor, curve: Tensor) -> Tensor:
    """Crossover suppression of the walk, without gradient: 1 + cos(feat - curve, cand - feat)
    clipped to [0, 1], i.e. candidates that turn back get a smaller score.
    cand (M, k, d) candidates, feat (M, d) current point, curve (M, d) descriptor -> (M, k).
    In float32 whatever the autocast: the expanded squared norm cancels badly in bf16 (a few
    percent of the weights flipped)."""
    with torch.no_grad(), torch.autocast(cand.device.type, enabled=False):
        cand, feat, curve = cand.float(), feat.float(), curve.float()
        direction = feat - curve  # (M, d)
        # dot products and norms of cand - feat from cand @ [direction, feat]: no (M, k, d) temp
        proj = torch.bmm(cand, torch.stack((direction, feat), dim=2))  # (M, k, 2)
        dot = proj[..., 0] - (feat * direction).sum(-1, keepdim=True)
        sq = (cand * cand).sum(-1) - 2 * proj[..., 1] + (feat * feat).sum(-1, keepdim=True)
        norms = sq.clamp_min(0.0).sqrt() * direction.norm(dim=-1, keepdim=True)
        return (1.0 + dot / norms.clamp_min(1e-8)).clamp(0.0, 1.0)


class CurveWalk(nn.Module):
    """Curve grouping: from the ``curves`` points with the highest learned score, walk ``length``
    steps over the k-NN graph. Each step scores the k neighbours of the current point from their
    features and the curve descriptor (a learned momentum mix of the last step and the previous
    descriptor), damps candidates that turn back (crossover suppression) and moves to the best one
    with a straight-through hard softmax, so the scores get gradients.
    """

    def __init__(self, *, dim: int, curves: int, length: int):
        super().__init__()
        self.curves = curves
        self.length = length
        self.start = nn.Linear(dim, 1, bias=False)
        self.agent = nn.Linear(2 * dim, 1, bias=False)
        self.agent_norm = nn.BatchNorm1d(1)
        self.momentum = nn.Linear(2 * dim, 2, bias=False)
        self.momentum_norm = nn.BatchNorm1d(2)

    def forward(self, x: Tensor, geo: Geometry) -> Tensor:
        """x (N, d) point features -> curves (n, m, length, d), m = min(curves, v) per cloud."""
        v = geo.v
        n, d = x.shape[0] // v, x.shape[1]
        m = min(self.curves, v)
        score = torch.sigmoid(self.start(x))  # (N, 1)
        x = x * score
        start = score.float().view(n, v).topk(m, dim=1).indices  # (n, m); bf16 would tie
        cur = (start + torch.arange(n, device=x.device)[:, None] * v).reshape(-1)  # (M,) rows
        w_cand, w_curve = self.agent.weight.view(2, d)
        curve = x[cur]  # (M, d) descriptor, starts at the start point
        steps, feat = [], None
        for _ in range(self.length):
            nbr = geo.adj[cur]  # (M, k)
            cand = x[nbr]  # (M, k, d)
            if feat is not None:  # after the first step: update the descriptor with momentum
                mix = self.momentum(torch.cat((feat, curve), dim=-1))
                mix = self.momentum_norm(mix).softmax(-1)  # (M, 2)
                curve = mix[:, :1] * feat + mix[:, 1:] * curve
            logits = cand @ w_cand + (curve @ w_curve).unsqueeze(1)  # (M, k)
            logits = self.agent_norm(logits.view(1, 1, -1)).view(logits.shape)
            if feat is not None:
                logits = logits * crossover_weights(cand, feat, curve)
            probs = logits.softmax(-1)
            choice = probs.argmax(-1, keepdim=True)  # (M, 1)
            cur = nbr.gather(1, choice).squeeze(1)
            # Straight-through hard softmax: the value is the chosen neighbour's features, the
            # gradient reaches the scores through sum_k (p_k - stop_grad(p_k)) cand_k (= 0).
            soft = ((probs - probs.detach()).unsqueeze(-1) * cand.detach()).sum(1)
            feat = x[cur] + soft  # (M, d)
            steps.append(feat)
        return torch.stack(steps, dim=1).view(n, m, self.length, d)


class CurveAggregation(nn.Module):
    """Aggregates the curves into every point: curves pooled along their steps (inter-curve) and
    steps pooled across curves (intra-curve), each attended by every point, added back to x."""

    def __init__(self, *, dim: int):
        super().__init__()
        mid = dim // 2
        self.curve_score = nn.Linear(dim, 1, bias=False)
        self.inter_key = nn.Linear(dim, mid, bias=False)
        self.intra_key = nn.Linear(dim, mid, bias=False)
        self.query = nn.Linear(dim, mid, bias=False)
        self.inter_value = nn.Linear(mid, mid, bias=False)
        self.intra_value = nn.Linear(mid, mid, bias=False)
        self.out = row_block(2 * mid, dim)

    def forward(self, x: Tensor, curves: Tensor) -> Tensor:
        """x (n, v, d), curves (n, m, l, d) -> (n, v, d)."""
        score = self.curve_score(curves)  # (n, m, l, 1)
        inter = self.inter_key((curves * score.softmax(2)).sum(2))  # (n, m, mid)
        intra = self.intra_key((curves * score.softmax(1)).sum(1))  # (n, l, mid)
        q = self.query(x)  # (n, v, mid)
        to_inter = (q @ inter.transpose(1, 2)).softmax(-1)  # (n, v, m)
        to_intra = (q @ intra.transpose(1, 2)).softmax(-1)  # (n, v, l)
        out = torch.cat(
            (to_inter @ self.inter_value(inter), to_intra @ self.intra_value(intra)), dim=-1
        )
        return F.leaky_relu(x + self.out(out), LEAK)


class CIC(nn.Module):
    """Curve intervention convolution block (residual bottleneck):
    x -> Linear to in_dim / bottleneck + BN + LeakyReLU -> [curve walk + aggregation] -> LPFA ->
    Linear to out_dim + BN, plus the (projected) input, LeakyReLU."""

    def __init__(
        self,
        *,
        in_channels: int,
        in_dim: int,
        out_dim: int,
        bottleneck: int,
        curves: int,
        curve_length: int,
    ):
        super().__init__()
        planes = in_dim // bottleneck
        self.reduce = row_block(in_dim, planes, LEAK)
        self.walk = CurveWalk(dim=planes, curves=curves, length=curve_length) if curves else None
        self.aggregate = CurveAggregation(dim=planes) if curves else None
        self.lpfa = LPFA(in_channels=in_channels, out_dim=planes, point_dim=planes)
        self.expand = row_block(planes, out_dim)
        self.shortcut = row_block(in_dim, out_dim) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, geo: Geometry) -> Tensor:
        """x (N, in_dim) -> (N, out_dim)."""
        h = self.reduce(x)  # (N, planes)
        if self.walk is not None:
            curves = self.walk(h, geo)
            h = self.aggregate(h.view(-1, geo.v, h.shape[-1]), curves).view(h.shape)
        return F.leaky_relu(self.expand(self.lpfa(geo, h)) + self.shortcut(x), LEAK)


class CurveNet(nn.Module):
    """Per-point features of n point clouds: xyz (n, v, c) -> (n, v, out_dim)."""

    def __init__(
        self,
        *,
        in_channels: int,
        k: int,
        lpfa_dim: int,
        cic_dims: tuple[int, ...],
        cic_bottlenecks: tuple[int, ...],
        cic_curves: tuple[int, ...],
        curve_length: int,
        out_dim: int,
    ):
        super().__init__()
        self.k = k
        self.lpfa = LPFA(in_channels=in_channels, out_dim=lpfa_dim)
        widths = (lpfa_dim, *cic_dims)
        self.blocks = nn.ModuleList(
            CIC(
                in_channels=in_channels,
                in_dim=widths[i],
                out_dim=widths[i + 1],
                bottleneck=cic_bottlenecks[i],
                curves=cic_curves[i],
                curve_length=curve_length,
            )
            for i in range(len(cic_dims))
        )
        self.head = row_block(widths[-1], out_dim, leak=0.0)  # Linear + BatchNorm + ReLU

    def forward(self, xyz: Tensor, points: Tensor | None = None) -> Tensor:
        """xyz (n, v, c) builds the k-NN graph; ``points`` (n, v, c), if given, are the
        coordinates the layers see."""
        n, v, _ = xyz.shape
        geo = geometry(xyz, self.k, points)
        x = self.lpfa(geo)  # (N, lpfa_dim)
        for block in self.blocks:
            x = block(x, geo)
        return self.head(x).view(n, v, -1)
