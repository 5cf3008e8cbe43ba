"""ssma-demo, the README's first command.

Short real runs (node and camera processes over DDS) on RGB-D and on RGB + thermal, the runs it
refuses before starting anything, the camera process, and the Fast DDS profile it uses for
camera-sized images. The listener runs without torch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from ssma_ros import share
from ssma_ros.demo import DemoConfig, Listener, camera, camera_cli, listener, processes
from ssma_ros.demo import cli as demo_cli
from ssma_ros.demo.config import bundle_and_benchmark
from ssma_ros.demo.report import THERMAL_RANGE_C, print_summary, thermal_inferno

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = ROOT / "models" / "default"
PROFILE = ROOT / "config" / "fastdds_large_images.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


@pytest.fixture
def no_dds_profile(monkeypatch):
    """No profile set; whatever the demo sets is undone afterwards.

    setenv records the original.
    """
    for name in PROFILE_VARS:
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)


def test_large_image_profile_gives_the_default_participant_a_big_shared_memory_segment():
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(PROFILE).getroot()
    transports = {
        t.findtext("d:transport_id", namespaces=ns): t
        for t in root.iterfind(".//d:transport_descriptor", ns)
    }
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = participant.findtext(".//d:userTransports/d:transport_id", namespaces=ns)
    assert transports[used].findtext("d:type", namespaces=ns) == "SHM"
    # 640x480 rgb8 is 900 KiB: the default segment (512 KiB) cannot hold one frame.
    assert int(transports[used].findtext("d:segment_size", namespaces=ns)) >= 8 * 640 * 480 * 3
    assert (
        participant.findtext(".//d:useBuiltinTransports", namespaces=ns) == "true"
    )  # UDP stays for other hosts


def test_demo_sets_the_profile_unless_one_is_set(no_dds_profile, monkeypatch):
    monkeypatch.delenv("ROS_DISTRO", raising=False)  # the pip wheels: Kilted, Fast DDS 3
    assert Path(processes.use_large_image_transport()) == PROFILE
    assert Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]) == PROFILE
    assert (
        Path(processes.use_large_image_transport()) == PROFILE
    )  # a second run in the process: still ours
    assert (
        "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ
    )  # Fast DDS 3 warns about the old name
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE")
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert Path(processes.use_large_image_transport()) == PROFILE
    assert Path(os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"]) == PROFILE
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/etc/robot/dds.xml")
    assert processes.use_large_image_transport() == "/etc/robot/dds.xml (yours)"
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ


def test_short_demo_scores_masks_from_a_separate_node_process(
    no_dds_profile, tmp_path, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "torch", None)  # the listener scores with numpy
    config = demo_cli.parse_args(
        ["--duration", "4", "--rate", "10", "--drop-depth", "--backend", "onnxruntime"]
        + ["--out", str(tmp_path)]
    )
    assert config == DemoConfig(4.0, 10.0, drop_aux=True, backend="onnxruntime", out=tmp_path)
    summary = Listener().run(config)
    assert summary["masks_received"] >= 5, (tmp_path / "node.log").read_text()
    assert 20.0 < summary["miou"] <= 100.0  # the default model on test-split frames
    assert summary["node"]["backend"] == "onnxruntime"
    assert (
        0 < summary["node_cpu_ms_per_frame"] < 10_000
    )  # the node process's CPU, read while streaming
    assert Path(summary["dds_profile"]) == PROFILE
    assert (
        json.loads((tmp_path / "summary.json").read_text())["masks_received"]
        == summary["masks_received"]
    )
    print_summary(summary)
    out = capsys.readouterr().out
    assert "  depth dropped  mIoU" in out and "alone while depth was off" in out  # as in README


def test_camera_phases_and_frame_file(tmp_path):
    assert [camera.phase_at(f, True) for f in (0.0, 0.39, 0.4, 0.69, 0.7, 1.0)] == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert {camera.phase_at(f, False) for f in (0.0, 0.5, 0.9)} == {0}
    assert camera_cli.parse_args(["f.npz", "--drop-depth"]).drop_aux  # the README's old name
    assert camera.phases("depth")[camera.AUX_DROPPED] == "depth dropped"
    assert camera.phases("thermal")[camera.AUX_DROPPED] == "thermal dropped"
    depth = np.array(
        [[1.2344, np.nan], [np.inf, 70.0]], np.float32
    )  # 70 m is beyond 16-bit millimetres
    rgb = np.zeros((2, 2, 3), np.uint8)
    mm = camera.depth_to_mm(depth)
    camera.save_frames(tmp_path / "f.npz", [rgb], [mm], "16UC1", [(1.0, 2.0, 3.0, 4.0)])
    data = np.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(data["aux"][0], [[1234, 0], [0, 65535]])
    assert data["aux"].dtype == np.uint16 and data["camera"].tolist() == [[1.0, 2.0, 3.0, 4.0]]
    assert str(data["aux_encoding"]) == "16UC1"


def test_thermal_picture_has_one_fixed_scale():
    import matplotlib

    low, high = THERMAL_RANGE_C
    celsius = np.array([[low - 10, low, 15.0, high, high + 30]])
    colours = thermal_inferno(np.round((celsius + 273.15) * 100).astype(np.uint16))
    inferno = matplotlib.colormaps["inferno"]
    expected = [inferno(0.0), inferno(0.0), inferno(0.5), inferno(1.0), inferno(1.0)]
    np.testing.assert_allclose(colours[0], np.array(expected)[:, :3] * 255, atol=1)


def test_camera_process_says_when_nobody_subscribes(tmp_path):
    camera.save_frames(
        tmp_path / "f.npz",
        [np.zeros((4, 4, 3), np.uint8)],
        [np.full((4, 4), 29315, np.uint16)],
        "mono16",
        [(2.0, 2.0, 2.0, 2.0)],
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssma_ros.demo.camera_cli",
            str(tmp_path / "f.npz"),
            "--wait",
            "0.5",
            "--namespace",
            "/nobody_listens",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "nobody subscribed to /nobody_listens/camera/color/image_raw" in run.stderr
    assert run.stdout == ""  # no frame was sent


def test_demo_can_time_without_scoring(no_dds_profile, tmp_path):
    """ssma-bench's listener: masks timed, none decoded or scored."""
    config = DemoConfig(
        duration=3, rate=10, score=False, overlay=False, backend="onnxruntime", out=tmp_path
    )
    summary = Listener().run(config)
    assert summary["masks_received"] >= 5, (tmp_path / "node.log").read_text()
    assert summary["frames_by_phase"] == {} and np.isnan(summary["miou"])
    assert summary["latency_p50_ms"] > 0


@pytest.fixture
def topic_encodings():
    """Record the encoding of every Image on a topic, from a ROS context of the test's own."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("encoding_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    seen: list[str] = []

    def record(topic: str) -> list[str]:
        node.create_subscription(
            Image, topic, lambda msg: seen.append(msg.encoding), qos_profile_sensor_data
        )
        threading.Thread(target=executor.spin, daemon=True).start()
        return seen

    yield record
    executor.shutdown(timeout_sec=2)
    node.destroy_node()
    context.try_shutdown()


def test_thermal_demo_streams_mono16_and_falls_back_to_rgb_while_it_is_off(
    no_dds_profile, thermal_bundle, topic_encodings, tmp_path, monkeypatch, capsys
):
    config = demo_cli.parse_args(
        ["--aux", "thermal", "--bundle", str(thermal_bundle), "--drop-aux", "--size", "64x80"]
        + ["--duration", "4", "--backend", "onnxruntime", "--out", str(tmp_path)]
    )
    assert (config.aux, config.drop_aux) == ("thermal", True)
    encodings = topic_encodings(f"{processes.NAMESPACE}/camera/thermal/image_raw")
    monkeypatch.setitem(sys.modules, "torch", None)  # the listener scores with numpy
    summary = Listener().run(config)
    log = (tmp_path / "node.log").read_text()
    phases = ("before drop", "thermal dropped", "after drop")
    assert set(summary["frames_by_phase"]) == set(phases), log  # masks in every phase
    assert min(summary["frames_by_phase"].values()) >= 2, summary["frames_by_phase"]
    assert encodings and set(encodings) == {"mono16"}
    assert int(summary["node"]["pairs_in"]) > 0  # RGB + thermal pairs reached the model
    assert summary["rgb_only_frames_during_drop"] > 0, log
    assert Path(summary["picture"]).is_file()
    print_summary(summary)
    out = capsys.readouterr().out
    assert "  thermal dropped" in out and "alone while thermal was off" in out


def _refused(argv: list[str], monkeypatch, capsys) -> str:
    """Run ssma-demo, which must exit 1 before starting a process; its one stderr line."""

    def no_process(*args, **kwargs):
        raise AssertionError("a process was started")

    monkeypatch.setattr(listener, "start_node", no_process)
    assert demo_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("ssma-demo: ") and err.count("\n") == 1, err
    return err


def test_thermal_serves_the_shipped_rgbt_bundle_and_names_it_when_missing(
    thermal_bundle, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(share, "share_candidates", lambda: [tmp_path / "share"])
    err = _refused(["--aux", "thermal", "--out", str(tmp_path / "out")], monkeypatch, capsys)
    assert "models/rgbt" in err and "--bundle" in err
    assert not (tmp_path / "out").exists()
    shipped = shutil.copytree(thermal_bundle, tmp_path / "share" / "models" / "rgbt")
    assert bundle_and_benchmark(DemoConfig(aux="thermal")) == (shipped.resolve(), "v1")


def test_a_bundle_for_the_other_aux_stream_is_refused(thermal_bundle, monkeypatch, capsys):
    err = _refused(["--aux", "thermal", "--bundle", str(DEFAULT_BUNDLE)], monkeypatch, capsys)
    assert "takes aux 'depth'" in err and "--aux thermal" in err
    err = _refused(["--bundle", str(thermal_bundle)], monkeypatch, capsys)  # --aux depth
    assert "takes aux 'infrared'" in err and "--aux depth" in err


def test_conditions_are_those_of_the_benchmark_the_bundle_was_trained_on(
    thermal_bundle, tmp_path, monkeypatch, capsys
):
    # the fixture's bundle records no benchmark: v1, whose conditions are the camera's alone
    v1 = ["--aux", "thermal", "--bundle", str(thermal_bundle), "--condition", "sunlight"]
    err = _refused(v1, monkeypatch, capsys)
    assert "unknown condition 'sunlight'" in err and "clear, fog, night, glare, rain" in err
    assert bundle_and_benchmark(DemoConfig(condition="sunlight"))[1] == "v2"  # the default
    assert "--strength must be in 0..1" in _refused(["--strength", "2"], monkeypatch, capsys)
    with pytest.raises(RuntimeError, match="unknown aux stream 'sonar'"):
        bundle_and_benchmark(DemoConfig(aux="sonar"))
    v2 = shutil.copytree(thermal_bundle, tmp_path / "v2")
    meta = json.loads((v2 / "bundle.json").read_text())
    meta.setdefault("training", {})["train_config"] = {"data": {"benchmark": "v2"}}
    (v2 / "bundle.json").write_text(json.dumps(meta))
    config = DemoConfig(aux="thermal", bundle=str(v2), condition="sunlight")
    assert bundle_and_benchmark(config) == (v2.resolve(), "v2")
    _refused(["--aux", "thermal", "--bundle", str(v2), "--condition", "snow"], monkeypatch, capsys)
