"""Process-isolated ROS 2 workers for a Basler camera and a Bota F/T sensor."""
