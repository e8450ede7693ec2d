"""`python -m sensor_workers.bridge`: the bridge process (see main.py)."""

from sensor_workers.bridge.main import main

main()
