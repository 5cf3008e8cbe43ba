"""`colcon build` of this package, as on a ROS 2 install: executables, share files, ament index."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(
    ".git",
    ".venv",
    "runs",
    "build",
    "install",
    "log",
    "__pycache__",
    "*.egg-info",
    "demo_out",
    ".hypothesis",
)


def test_colcon_build_installs_executables_and_share_files(tmp_path):
    shutil.copytree(ROOT, tmp_path / "src" / "ssma_ros", ignore=SKIP)
    colcon = Path(sys.executable).with_name("colcon")
    result = subprocess.run(
        [str(colcon), "build", "--packages-select", "ssma_ros"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "ssma_ros"
    lib = prefix / "lib" / "ssma_ros"
    for exe in (
        "segment_node",
        "ssma-demo",
        "ssma-train",
        "ssma-export",
        "ssma-build-engine",
        "ssma-model-info",
    ):
        assert (lib / exe).is_file(), f"{exe} not in lib/ssma_ros"
    share = prefix / "share" / "ssma_ros"
    for rel in (
        "package.xml",
        "launch/segment.launch.py",
        "config/segment.yaml",
        "config/segment.rviz",
        "models/default/bundle.json",
        "models/default/model.onnx",
        "models/rgbt/bundle.json",
        "models/rgbt/model.onnx",
    ):
        assert (share / rel).is_file(), f"share/ssma_ros/{rel} not installed"
    assert (
        prefix / "share" / "ament_index" / "resource_index" / "packages" / "ssma_ros"
    ).is_file()

    # The installed tree finds its own default bundle through the ament index.
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = {**os.environ, "AMENT_PREFIX_PATH": str(prefix), "PYTHONPATH": str(site)}
    probe = (
        "from ssma_ros.serve.segmenter import default_bundle_path; import ssma_ros; "
        "print(default_bundle_path()); print(ssma_ros.__file__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    bundle_path, module_path = out.stdout.split()
    assert Path(bundle_path) == share / "models" / "default"
    assert Path(module_path).is_relative_to(site)
