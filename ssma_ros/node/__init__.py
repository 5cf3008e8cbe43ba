"""The ROS 2 segmentation node and the parts it is built from."""
