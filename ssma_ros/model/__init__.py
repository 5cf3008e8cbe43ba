"""AdapNet++ and SSMA networks, their configs, loss and checkpoint format."""

from .builder import ARCHS, build_model
from .checkpoint import load_checkpoint, save_checkpoint
from .config import CONFIGS, ModelConfig, get_config
from .loss import SegLoss
from .ssma import capture_gates

__all__ = [
    "ARCHS",
    "CONFIGS",
    "ModelConfig",
    "SegLoss",
    "build_model",
    "capture_gates",
    "get_config",
    "load_checkpoint",
    "save_checkpoint",
]
