"""Start the SSMA segmentation node (and RViz with rviz:=true).

ros2 launch ssma_ros segment.launch.py rgb_topic:=/camera/color/image_raw \
        aux_topic:=/camera/aligned_depth_to_color/image_raw \
        camera_info_topic:=/camera/color/camera_info

The params file comes first; `bundle`, `backend` and `autostart` override it only when given, so
a params file's `backend: torch` is not replaced by an argument left unset.
"""

from pathlib import Path
from shutil import which

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ssma_ros.node.params import LAUNCH_PARAMETERS, launch_overrides

SHARE = Path(get_package_share_directory("ssma_ros"))

ARGUMENTS = {
    "namespace": ("segmentation", "namespace of the node and its outputs"),
    "params_file": (str(SHARE / "config" / "segment.yaml"), "node parameter file"),
    "bundle": ("", "model bundle folder (empty: the params file's, else the default bundle)"),
    "backend": ("", "auto | tensorrt | onnxruntime | torch (empty: the params file's, else auto)"),
    "autostart": (
        "",
        "true: configure and activate at once; false: wait for a lifecycle manager "
        "(empty: the params file's, else true)",
    ),
    "rgb_topic": ("/camera/color/image_raw", "RGB image topic"),
    "aux_topic": (
        "/camera/aligned_depth_to_color/image_raw",
        "depth or infrared topic, registered to RGB",
    ),
    "camera_info_topic": (
        "/camera/color/camera_info",
        "camera_info of the registered images (for ~/cloud)",
    ),
    "rviz": ("false", "also start RViz with config/segment.rviz (needs rviz2 installed)"),
}


def _rviz_installed() -> bool:
    try:
        get_package_share_directory("rviz2")
    except PackageNotFoundError:
        return which("rviz2") is not None
    return True


def _actions(context):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    overrides = launch_overrides({name: value[name] for name in LAUNCH_PARAMETERS})
    actions = [
        Node(
            package="ssma_ros",
            executable="segment_node",
            name="ssma_segmentation",
            namespace=value["namespace"],
            parameters=[value["params_file"], *([overrides] if overrides else [])],
            remappings=[
                ("rgb", value["rgb_topic"]),
                ("aux", value["aux_topic"]),
                ("camera_info", value["camera_info_topic"]),
            ],
            output="screen",
            emulate_tty=True,
        )
    ]
    if value["rviz"].lower() == "true":
        if _rviz_installed():
            actions.append(
                Node(
                    package="rviz2",
                    executable="rviz2",
                    arguments=["-d", str(SHARE / "config" / "segment.rviz")],
                )
            )
        else:
            actions.append(LogInfo(msg="rviz:=true but rviz2 is not installed: not starting it"))
    return actions


def generate_launch_description() -> LaunchDescription:
    declared = [
        DeclareLaunchArgument(name, default_value=d, description=h)
        for name, (d, h) in ARGUMENTS.items()
    ]
    return LaunchDescription([*declared, OpaqueFunction(function=_actions)])
