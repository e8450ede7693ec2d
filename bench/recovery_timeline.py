"""An independent observer of worker recoveries, and its plot (used by `python -m bench`).

Run in the same ROS domain as a recovery or soak run, it records when data of each device
arrives (/ft/wrench, /camera/image_raw) and the manager's /safety/worker_events, until SIGTERM or
`--max-seconds`, and writes them to a JSON file. `plot()` draws one row per kill: the data
arrivals around the `exited` event (t = 0), with the `restarted` event marked.

    python -m bench.recovery_timeline --out timeline.json --max-seconds 120
"""

import argparse
from array import array
import json
from pathlib import Path
import sys
import time

WINDOW_S = (-0.5, 6.0)


def observe(out: Path, max_seconds: float) -> int:
    from diagnostic_msgs.msg import DiagnosticStatus
    from geometry_msgs.msg import WrenchStamped
    import rclpy
    from sensor_msgs.msg import Image

    from bench.observer import spin_until_stopped
    from sensor_workers import qos
    from sensor_workers.diagnostics import status_values

    arrivals = {'ft': array('q'), 'camera': array('q')}
    events: list[dict] = []
    rclpy.init(args=['--ros-args', '-r', '__node:=recovery_timeline'])
    node = rclpy.create_node('recovery_timeline')
    node.create_subscription(WrenchStamped, '/ft/wrench',
                             lambda _: arrivals['ft'].append(time.time_ns()), qos.SENSOR_STREAM)
    node.create_subscription(Image, '/camera/image_raw',
                             lambda _: arrivals['camera'].append(time.time_ns()),
                             qos.SENSOR_DATA)

    def on_event(msg: DiagnosticStatus) -> None:
        values = status_values(msg)
        events.append({'t_ns': time.time_ns(), 'device': msg.name,
                       'event': values.get('event', ''), 'pid': values.get('pid', '')})

    node.create_subscription(DiagnosticStatus, '/safety/worker_events', on_event,
                             qos.LATCHED_EVENTS)
    spin_until_stopped(node, max_seconds, 'observer ready')
    out.write_text(json.dumps({'arrivals': {k: list(v) for k, v in arrivals.items()},
                               'events': events}))
    return 0


def plot(data: dict, path: Path, title: str) -> Path | None:
    """Draw the kills' timelines into a PNG; None when there was no kill to draw."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    devices = [d for d in ('camera', 'ft')
               if any(e['device'] == d and e['event'] == 'exited' for e in data['events'])]
    if not devices:
        return None
    fig, axes = plt.subplots(len(devices), 1, figsize=(11, 2.2 + 1.6 * len(devices)),
                             squeeze=False)
    for ax, device in zip(axes[:, 0], devices, strict=True):
        arrivals = np.asarray(data['arrivals'].get(device, []), dtype=np.int64)
        exits = [e for e in data['events'] if e['device'] == device and e['event'] == 'exited']
        restarts = [e['t_ns'] for e in data['events']
                    if e['device'] == device and e['event'] == 'restarted']
        rows = []
        for exit_event in exits:
            t0 = exit_event['t_ns']
            rel = (arrivals - t0) / 1e9
            rows.append(rel[(rel >= WINDOW_S[0]) & (rel <= WINDOW_S[1])])
            back = [(t - t0) / 1e9 for t in restarts if 0 <= t - t0 <= WINDOW_S[1] * 1e9]
            if back:
                ax.plot(back[:1], [len(rows) - 1], marker='|', color='green', markersize=14)
        ax.eventplot(rows, lineoffsets=range(len(rows)), linelengths=0.7, linewidths=0.6,
                     colors='tab:blue')
        ax.axvline(0.0, color='red', linewidth=1)
        ax.set_xlim(*WINDOW_S)
        ax.set_ylabel(f'{device}\nkill #')
        ax.set_title(f'{device}: data arrivals around each `exited` event (red, t=0); '
                     'green: `restarted`', fontsize=9)
    axes[-1, 0].set_xlabel("time relative to the manager's exited event [s]")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', type=Path, required=True, help='JSON written at the end')
    parser.add_argument('--max-seconds', type=float, default=600.0)
    args = parser.parse_args(argv)
    return observe(args.out, args.max_seconds)


if __name__ == '__main__':
    sys.exit(main())
