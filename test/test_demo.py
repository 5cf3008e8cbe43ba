"""ssma-demo, the README's first command: a short real run (node process + camera over DDS) and
the Fast DDS profile it uses for camera-sized images."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ssma_ros import demo

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "config" / "fastdds_large_images.xml"
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")


@pytest.fixture
def no_dds_profile(monkeypatch):
    """No profile set; whatever the demo sets is undone afterwards (setenv records the original)."""
    for name in PROFILE_VARS:
        monkeypatch.setenv(name, "unset")
        monkeypatch.delenv(name)


def test_large_image_profile_gives_the_default_participant_a_big_shared_memory_segment():
    ns = {"d": "http://www.eprosima.com"}
    root = ET.parse(PROFILE).getroot()
    transports = {t.findtext("d:transport_id", namespaces=ns): t for t in root.iterfind(".//d:transport_descriptor", ns)}
    participant = root.find(".//d:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = participant.findtext(".//d:userTransports/d:transport_id", namespaces=ns)
    assert transports[used].findtext("d:type", namespaces=ns) == "SHM"
    # 640x480 rgb8 is 900 KiB: the default segment (512 KiB) cannot hold one frame.
    assert int(transports[used].findtext("d:segment_size", namespaces=ns)) >= 8 * 640 * 480 * 3
    assert participant.findtext(".//d:useBuiltinTransports", namespaces=ns) == "true"  # UDP stays for other hosts


def test_demo_sets_the_profile_unless_one_is_set(no_dds_profile, monkeypatch):
    monkeypatch.delenv("ROS_DISTRO", raising=False)  # the pip wheels: Kilted, Fast DDS 3
    assert Path(demo.use_large_image_transport()) == PROFILE
    assert Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"]) == PROFILE
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ  # Fast DDS 3 warns about the old name
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE")
    monkeypatch.setenv("ROS_DISTRO", "humble")
    assert Path(demo.use_large_image_transport()) == PROFILE
    assert Path(os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"]) == PROFILE
    monkeypatch.setenv("FASTRTPS_DEFAULT_PROFILES_FILE", "/etc/robot/dds.xml")
    assert demo.use_large_image_transport() == "/etc/robot/dds.xml (yours)"
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ


def test_short_demo_scores_masks_from_a_separate_node_process(no_dds_profile, tmp_path):
    args = demo.parse_args(["--duration", "4", "--rate", "10", "--drop-depth", "--backend", "onnxruntime",
                            "--out", str(tmp_path)])
    summary = demo.run(args)
    assert summary["masks_received"] >= 5, (tmp_path / "node.log").read_text()
    assert 20.0 < summary["miou"] <= 100.0  # the default model on test-split frames
    assert summary["node"]["backend"] == "onnxruntime"
    assert Path(summary["dds_profile"]) == PROFILE
    assert json.loads((tmp_path / "summary.json").read_text())["masks_received"] == summary["masks_received"]
