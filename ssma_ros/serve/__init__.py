"""The ROS-free serving core: what the node runs, importable without rclpy."""
