"""Start the SSMA segmentation node (and RViz with rviz:=true).

ros2 launch ssma_ros segment.launch.py rgb_topic:=/camera/color/image_raw \
        aux_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

SHARE = Path(get_package_share_directory("ssma_ros"))

ARGUMENTS = {
    "namespace": ("segmentation", "namespace of the node and its outputs"),
    "params_file": (str(SHARE / "config" / "segment.yaml"), "node parameter file"),
    "bundle": ("", "model bundle folder (empty: the default bundle)"),
    "backend": ("auto", "auto | tensorrt | onnxruntime | torch"),
    "rgb_topic": ("/camera/color/image_raw", "RGB image topic"),
    "aux_topic": (
        "/camera/aligned_depth_to_color/image_raw",
        "depth or infrared topic, registered to RGB",
    ),
    "camera_info_topic": (
        "/camera/color/camera_info",
        "camera_info of the registered images (for ~/cloud)",
    ),
    "rviz": ("false", "also start RViz with config/segment.rviz"),
}


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    segment = Node(
        package="ssma_ros",
        executable="segment_node",
        name="ssma_segmentation",
        namespace=arg("namespace"),
        parameters=[arg("params_file"), {"bundle": arg("bundle"), "backend": arg("backend")}],
        remappings=[
            ("rgb", arg("rgb_topic")),
            ("aux", arg("aux_topic")),
            ("camera_info", arg("camera_info_topic")),
        ],
        output="screen",
        emulate_tty=True,
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        arguments=["-d", str(SHARE / "config" / "segment.rviz")],
        condition=IfCondition(arg("rviz")),
    )
    declared = [
        DeclareLaunchArgument(name, default_value=d, description=h)
        for name, (d, h) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, segment, rviz])
