"""The Foxglove WebSocket protocol of `WS /foxglove`: its pieces, without rclpy or FastAPI."""
