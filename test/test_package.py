"""The package as ROS 2 and pip see it.

package.xml, data files, entry points, and a real DDS round trip.
"""

import ast
import time
from pathlib import Path

from catkin_pkg.package import parse_package

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_valid_format_3():
    pkg = parse_package(str(ROOT / "package.xml"))  # validates against the format-3 rules
    assert pkg.package_format == 3
    assert pkg.name == "ssma_ros"
    assert pkg.get_build_type() == "ament_python"
    emails = [m.email for m in pkg.maintainers]
    assert emails and all("@" in e and "." in e.split("@")[1] for e in emails)
    run_deps = {d.name for d in pkg.exec_depends}
    for dep in (
        "rclpy",
        "sensor_msgs",
        "std_msgs",
        "diagnostic_msgs",
        "message_filters",
        "cv_bridge",
        "python3-numpy",
    ):
        assert dep in run_deps, f"package.xml lacks exec_depend {dep}"


def _setup_call():
    tree = ast.parse((ROOT / "setup.py").read_text())
    calls = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup"
    ]
    assert len(calls) == 1
    return {kw.arg: kw.value for kw in calls[0].keywords}


def test_setup_cfg_installs_executables_where_ros2_run_looks():
    text = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/ssma_ros" in text
    assert "install_scripts=$base/lib/ssma_ros" in text


def test_data_files_cover_launch_config_models_and_marker():
    import runpy

    import setuptools

    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
    data = {dest: files for dest, files in captured["data_files"]}
    assert data["share/ament_index/resource_index/packages"] == ["resource/ssma_ros"]
    assert (ROOT / "resource" / "ssma_ros").is_file()
    assert "package.xml" in data["share/ssma_ros"]
    installed = {f for files in data.values() for f in files}
    for folder in ("launch", "config", "models"):
        on_disk = {str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*") if p.is_file()}
        assert on_disk, f"{folder}/ is empty"
        assert on_disk <= installed, f"not installed: {sorted(on_disk - installed)}"
    scripts = captured["entry_points"]["console_scripts"]
    assert any(s.startswith("segment_node = ") for s in scripts)


def test_entry_points_resolve_to_callables():
    import importlib

    for spec in _setup_call()["entry_points"].values[0].elts:  # console_scripts list
        name, target = [s.strip() for s in spec.value.split("=")]
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_tools_follow_one_command_line_convention():
    """Check segment_node is the one node executable and every tool an `ssma-<verb>` command.

    Each command's main() is in a `cli` module, and argparse is imported only by `cli` modules
    (and `argtypes`, the argument types they share).
    """
    import re

    def is_cli(module: str) -> bool:
        return module.rsplit(".", 1)[-1] in ("cli", "__main__") or module.endswith("_cli")

    commands = {}
    for spec in _setup_call()["entry_points"].values[0].elts:  # console_scripts list
        name, target = [s.strip() for s in spec.value.split("=")]
        commands[name] = target.split(":")[0]
    assert commands.pop("segment_node") == "ssma_ros.node.segment_node"
    assert all(re.fullmatch(r"ssma-[a-z]+(-[a-z]+)*", name) for name in commands), commands
    assert [m for m in commands.values() if not is_cli(m)] == []
    parsing = []
    for path in sorted((ROOT / "ssma_ros").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        if "argparse" in imported and not is_cli(module) and module != "ssma_ros.argtypes":
            parsing.append(module)
    assert parsing == []


def test_image_round_trip_over_dds(ros_context):
    """A real rclpy publisher and subscriber exchange a sensor_msgs/Image over Fast DDS."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import Image

    node = rclpy.create_node("round_trip", context=ros_context)
    received = []
    pub = node.create_publisher(Image, "round_trip_image", 10)
    node.create_subscription(Image, "round_trip_image", received.append, 10)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    sent = Image(height=2, width=3, encoding="rgb8", step=9, data=bytes(range(18)))
    sent.header.frame_id = "camera"
    deadline = time.monotonic() + 10.0
    while not received and time.monotonic() < deadline:
        pub.publish(sent)
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    assert received, "no Image came back over DDS within 10 s"
    got = received[0]
    assert (got.height, got.width, got.encoding, got.step) == (2, 3, "rgb8", 9)
    assert bytes(got.data) == bytes(range(18)) and got.header.frame_id == "camera"
