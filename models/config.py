"""Model configuration: every size of DeepMarkerNet / MeshSmileNet, defaults = the published model.

The defaults reproduce the published architecture (../shared/NOTES.md section 3): CurveNet
(LPFA 9 -> 32, four CIC blocks 32 -> 32 -> 64 -> 128 -> 256 with bottlenecks 2/4/2/4, curve
grouping of 100 curves x 5 steps in the first two blocks, k = 20, no down-sampling), a mix of the
landmarks into 32 virtual landmarks, a 6-layer alternating time/landmark transformer (dim 256,
4 heads x 64, MLP 512) and a 3-layer temporal transformer. Tests build tiny versions by shrinking
the sizes; YAML configs set any field under ``model:``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: No network: the logistic-regression baseline of training/baseline.py, run by smile_point.py
#: on the same folds (the network fields of the config are then unused).
BASELINE = "dmarker-logreg"
NAMES = ("deepmarkernet", "meshsmilenet", BASELINE)
POINT_ENCODERS = ("curvenet", "linear")
ATTENTIONS = ("alternate", "time", "landmarks")


@dataclass
class ModelConfig:
    name: str = "deepmarkernet"  # deepmarkernet: class + D-Marker heads | meshsmilenet: class head
    point_encoder: str = "curvenet"  # curvenet | linear (ablation: per-point linear embedding)
    # alternate | time | landmarks (ablations: one axis only in the `depth` layers; the temporal
    # layers attend over frames in every variant: temporal_depth=0 leaves them out)
    attention: str = "alternate"
    in_channels: int = 3  # coordinates per landmark
    # BatchNorm over the v x c input coordinates of the real frames (as ST-GCN's data_bn), not in
    # the published model. Every face is mostly the mean face: without it the first layers see
    # one large common component and the smile deformation barely moves them (a 64-clip set
    # could not even be overfitted). CurveNet's k-NN graph still uses the raw geometry.
    input_norm: bool = True

    # CurveNet relativity encoder (per frame, landmarks as a point cloud).
    k: int = 20  # neighbours of the k-NN graph (built once per cloud: no down-sampling)
    lpfa_dim: int = 32  # output of the first LPFA (9 edge features -> 32)
    cic_dims: tuple[int, ...] = (32, 64, 128, 256)  # output features of each CIC block
    cic_bottlenecks: tuple[int, ...] = (2, 4, 2, 4)  # CIC inner width = block input / ratio
    cic_curves: tuple[int, ...] = (100, 100, 0, 0)  # curves per block; 0 = no curve grouping
    curve_length: int = 5  # steps of each curve walk
    encoder_dropout: float = 0.1  # on the per-point features leaving the encoder

    # Landmarks -> virtual landmarks -> transformers.
    virtual_landmarks: int = 32  # 1x1 mix of the V landmarks (no bias) + BatchNorm
    dim: int = 256  # token width (the encoder's output width)
    depth: int = 6  # space-time layers (alternating time / landmark attention)
    temporal_depth: int = 3  # layers of the temporal transformer on the per-frame tokens
    heads: int = 4
    dim_head: int = 64
    mlp_dim: int = 512
    dropout: float = 0.1  # attention output and MLP dropout

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field (also run by ``build_model``, since
        ``--set`` overrides assign fields after construction)."""
        for key, allowed in (
            ("name", NAMES),
            ("point_encoder", POINT_ENCODERS),
            ("attention", ATTENTIONS),
        ):
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"model.{key} = {getattr(self, key)!r}: use one of {', '.join(allowed)}"
                )
        self.cic_dims = tuple(self.cic_dims)
        self.cic_bottlenecks = tuple(self.cic_bottlenecks)
        self.cic_curves = tuple(self.cic_curves)
        if not len(self.cic_dims) == len(self.cic_bottlenecks) == len(self.cic_curves):
            raise ValueError(
                "model.cic_dims, model.cic_bottlenecks and model.cic_curves need one entry per "
                f"CIC block; got {len(self.cic_dims)}, {len(self.cic_bottlenecks)}, "
                f"{len(self.cic_curves)}"
            )
        widths = (self.lpfa_dim, *self.cic_dims[:-1])
        for i, (width, ratio) in enumerate(zip(widths, self.cic_bottlenecks, strict=True)):
            if ratio < 1 or width % ratio or width // ratio < 2:
                raise ValueError(
                    f"model.cic_bottlenecks[{i}] = {ratio}: the block input width {width} must "
                    "divide by it into at least 2 features"
                )
        positive = (
            "in_channels",
            "k",
            "lpfa_dim",
            "curve_length",
            "virtual_landmarks",
            "dim",
            "heads",
            "dim_head",
            "mlp_dim",
        )
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} = {getattr(self, key)}: must be at least 1")
        if self.depth < 0 or self.temporal_depth < 0:
            raise ValueError("model.depth and model.temporal_depth must be >= 0")
        for key in ("dropout", "encoder_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"model.{key} = {getattr(self, key)}: must be in [0, 1)")
