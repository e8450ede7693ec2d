"""Bota force/torque sensor: Gen0 protocol, simulator, reader backends and the `ft` worker."""
