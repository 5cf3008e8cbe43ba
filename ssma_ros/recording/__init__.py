"""From a robot's recordings to a dataset folder: rosbag2 extraction (`ssma-dataset`)."""
