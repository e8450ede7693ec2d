"""The websocket bridge: ROS topics to web clients, status, metrics and control over HTTP."""
