"""Installs ssma_ros with pip (a pip-only machine) or with `colcon build` (ament_python)."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "ssma_ros"
HERE = Path(__file__).parent


def share_files(folder: str) -> list[tuple[str, list[str]]]:
    """data_files entries that install `folder` (recursively) under share/ssma_ros/."""
    entries = []
    for directory in sorted(p for p in (HERE / folder).rglob("*") if p.is_dir()) + [HERE / folder]:
        files = sorted(str(f.relative_to(HERE)) for f in directory.iterdir() if f.is_file())
        if files:
            entries.append((f"share/{PACKAGE}/{directory.relative_to(HERE)}", files))
    return entries


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *share_files("launch"),
        *share_files("config"),
        *share_files("models"),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ssma_ros maintainers",
    maintainer_email="maintainers@users.noreply.r-seed-b4b42d4f.example",
    description="Multimodal RGB + depth/infrared semantic segmentation (SSMA) for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            # The one node executable; every user-facing tool is an ssma-<verb> command whose
            # main() lives in a `cli` module.
            "segment_node = ssma_ros.node.segment_node:main",
            "ssma-train = ssma_ros.train.cli:main",
            "ssma-experiment = ssma_ros.train.experiment.cli:main",
            "ssma-prune = ssma_ros.compress.cli:main",
            "ssma-dataset = ssma_ros.recording.cli:main",
            "ssma-eval = ssma_ros.evaluate_cli:main",
            "ssma-export = ssma_ros.export.bundle_cli:main",
            "ssma-build-engine = ssma_ros.export.engine_cli:main",
            "ssma-model-info = ssma_ros.model.info_cli:main",
            "ssma-demo = ssma_ros.demo.cli:main",
            "ssma-camera = ssma_ros.demo.camera_cli:main",
            "ssma-bench = ssma_ros.bench_cli:main",
        ],
    },
)
