"""Inference backends (tensorrt, onnxruntime, torch) behind one small interface.

Imports nothing from ssma_ros.train or the dataset readers; heavy libraries load only when the
backend that needs them starts, so a robot without torch can still run ONNX Runtime.
"""

from ssma_ros.runtime.base import Backend, BackendUnavailable
from ssma_ros.runtime.loader import BACKENDS, load_backend

__all__ = ["BACKENDS", "Backend", "BackendUnavailable", "load_backend"]
