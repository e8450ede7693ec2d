"""Test and benchmark harness: isolated ROS environments, managed processes, a ROS probe node."""
