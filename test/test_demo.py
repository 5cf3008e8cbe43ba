"""ssma-demo, the README's first command.

A short real run (node and camera processes over DDS), the camera process, and the Fast DDS
profile it uses for camera-sized images. The listener runs without torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from ssma_ros.demo import DemoConfig, Listener, camera, processes
from ssma_ros.demo import cli as demo_cli

ROOT = Path(__file__).resolve().parents[1]
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
    no_dds_profile, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch", None)  # the listener scores with numpy
    config = demo_cli.parse_args(
        ["--duration", "4", "--rate", "10", "--drop-depth", "--backend", "onnxruntime"]
        + ["--out", str(tmp_path)]
    )
    assert config == DemoConfig(4.0, 10.0, drop_depth=True, backend="onnxruntime", out=tmp_path)
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
    depth = np.array(
        [[1.2344, np.nan], [np.inf, 70.0]], np.float32
    )  # 70 m is beyond 16-bit millimetres
    rgb = np.zeros((2, 2, 3), np.uint8)
    camera.save_frames(tmp_path / "f.npz", [rgb], [depth], [(1.0, 2.0, 3.0, 4.0)])
    data = np.load(tmp_path / "f.npz")
    np.testing.assert_array_equal(data["depth"][0], [[1234, 0], [0, 65535]])
    assert data["depth"].dtype == np.uint16 and data["camera"].tolist() == [[1.0, 2.0, 3.0, 4.0]]


def test_camera_process_says_when_nobody_subscribes(tmp_path):
    camera.save_frames(
        tmp_path / "f.npz",
        [np.zeros((4, 4, 3), np.uint8)],
        [np.ones((4, 4), np.float32)],
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
