"""DeepMarkerNet / MeshSmileNet: CurveNet per frame, alternating space-time transformer, heads."""

from models.config import ModelConfig
from models.curvenet import CurveNet
from models.smile_net import (
    DeepMarkerNet,
    MeshSmileNet,
    SmileNet,
    SmileOutput,
    build_model,
    count_parameters,
)

__all__ = [
    "CurveNet",
    "DeepMarkerNet",
    "MeshSmileNet",
    "ModelConfig",
    "SmileNet",
    "SmileOutput",
    "build_model",
    "count_parameters",
]
