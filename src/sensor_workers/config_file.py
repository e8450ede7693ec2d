"""Read a node's section of a ROS parameter file without starting ROS (fast, for the CLI)."""

from pathlib import Path

import yaml


def node_parameters(config: Path, node: str) -> dict:
    """Return `node.ros__parameters` of a parameter file; empty without that file or section."""
    try:
        document = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    section = document.get(node) or {}
    return section.get('ros__parameters') or {}
