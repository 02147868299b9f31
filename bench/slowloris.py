"""p99 of a normal request with and without a slowloris (issue 11, item 12), in the same run.

usage: slowloris.py URL N_SLOW REQUESTS
Phase 1 (baseline): REQUESTS sequential GET /login, each on a fresh connection.
Phase 2: N_SLOW connections each send part of a request's headers and then nothing more
(afterwards one byte every 0.2 s, a classic slowloris); the same REQUESTS are measured meanwhile.
Phase 3: how many slow connections the server has closed, and when (the header timeout).
"""
import http.client, socket, sys, time, urllib.parse

url = urllib.parse.urlparse(sys.argv[1])
n_slow, n_req = int(sys.argv[2]), int(sys.argv[3])
host, port = url.hostname, url.port


def measure(label):
    times, bad = [], 0
    for _ in range(n_req):
        t = time.perf_counter()
        c = http.client.HTTPConnection(host, port, timeout=30)
        c.request("GET", "/login")
        r = c.getresponse()
        r.read()
        c.close()
        times.append(time.perf_counter() - t)
        bad += r.status != 200
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(len(times) * q))] * 1000
    print(f"{label:<28} p50 {p(0.5):7.2f} ms  p99 {p(0.99):7.2f} ms  max {times[-1]*1000:7.2f} ms  non-200: {bad}")
    return p(0.99)


base = measure("alone")
slow = []
opened = time.monotonic()
for _ in range(n_slow):
    s = socket.create_connection((host, port))
    s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    s.setblocking(False)
    slow.append(s)
# The header timer runs from the request's first byte, so trickling more bytes would not keep
# them open longer; they stay silent while the requests are measured.
under = measure(f"with {n_slow} slow connections")
print(f"ratio p99 with/without: {under / base:.2f} (p99 {under:.2f} ms; target <= 100 ms)")
closed_at = {}
while len(closed_at) < len(slow) and time.monotonic() - opened < 120:
    for i, s in enumerate(slow):
        if i in closed_at:
            continue
        try:
            s.send(b"a")
            if s.recv(1) == b"":
                closed_at[i] = time.monotonic() - opened
        except BlockingIOError:
            pass
        except OSError:
            closed_at[i] = time.monotonic() - opened
    time.sleep(0.2)
if closed_at:
    t = sorted(closed_at.values())
    print(f"slow connections closed by the server: {len(t)}/{len(slow)}, first after {t[0]:.1f} s, last after {t[-1]:.1f} s")
else:
    print("no slow connection was closed within 120 s")
