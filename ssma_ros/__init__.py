"""ssma_ros: multimodal (RGB + depth/infrared) semantic segmentation for ROS 2."""

__version__ = "0.1.0"
