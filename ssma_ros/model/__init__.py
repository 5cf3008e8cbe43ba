"""AdapNet++ and SSMA networks, their configs, loss and checkpoint format."""

from ssma_ros.model.base import OUT, SIDE_EIGHTH, SIDE_QUARTER, SegmentationModel, SegOutput
from ssma_ros.model.builder import ARCHS, build_model
from ssma_ros.model.checkpoint import load_checkpoint, save_checkpoint
from ssma_ros.model.config import CONFIGS, ModelConfig, get_config
from ssma_ros.model.loss import SegLoss
from ssma_ros.model.ssma import capture_gates

__all__ = [
    "ARCHS",
    "CONFIGS",
    "OUT",
    "SIDE_EIGHTH",
    "SIDE_QUARTER",
    "ModelConfig",
    "SegLoss",
    "SegOutput",
    "SegmentationModel",
    "build_model",
    "capture_gates",
    "get_config",
    "load_checkpoint",
    "save_checkpoint",
]
