"""Polls URL until it answers 200; prints the milliseconds since START_NS (a `date +%s%N`)."""
import sys, time, urllib.request
url, start = sys.argv[1], int(sys.argv[2])
while True:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                break
    except Exception:
        time.sleep(0.002)
print(f"{(time.time_ns() - start) / 1e6:.0f} ms from exec to the first answered request")
