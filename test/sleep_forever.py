"""A process that ignores SIGTERM and sleeps: a stand-in for a hung worker in process tests."""

import signal
import time

if __name__ == '__main__':
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)
