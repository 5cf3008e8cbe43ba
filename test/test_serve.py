"""The ROS-free serving core: importable and usable without rclpy or any message package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_serving_core_imports_no_ros_package() -> None:
    """Offline tools (bundle_eval, demo, ssma-dataset from-bag) use it on machines without ROS."""
    code = (
        "import sys, pkgutil, importlib, ssma_ros.serve\n"
        "for m in pkgutil.iter_modules(ssma_ros.serve.__path__):\n"
        "    importlib.import_module('ssma_ros.serve.' + m.name)\n"
        "import ssma_ros.compress.bundle_eval\n"
        "ros = ('rclpy', 'sensor_msgs', 'std_msgs', 'message_filters', 'cv_bridge', 'rcl_interfaces')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ros"
        " or m.startswith('ssma_ros.node')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
