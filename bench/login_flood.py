"""p99 latency of authenticated reads, alone and while 50 clients (each bound to its own loopback
address, so per-address throttling does not simply shut them out) send wrong passwords.
The attackers run in their own processes, apart from the prober's interpreter.
Usage: login_flood.py URL TOKEN SECONDS. Bounded: each phase stops after SECONDS."""
import http.client, json, multiprocessing, sys, threading, time
from urllib.parse import urlparse

url, token, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
host, port = urlparse(url).hostname, urlparse(url).port


def probe(seconds):
    conn = http.client.HTTPConnection(host, port)
    lat = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        conn.request("GET", "/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        lat.append((time.perf_counter() - t) * 1000)
        time.sleep(0.002)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], len(lat)


def attacker(i, stop, counts):
    src = (f"127.0.{1 + i // 250}.{1 + i % 250}", 0)
    conn = http.client.HTTPConnection(host, port, source_address=src)
    n = 0
    while not stop.is_set():
        body = json.dumps({"username": f"victim{n % 7}", "password": f"wrong guess number {n}"})
        try:
            conn.request("POST", "/api/v1/auth/login", body, {"content-type": "application/json"})
            r = conn.getresponse(); r.read()
            counts[r.status] = counts.get(r.status, 0) + 1
        except Exception:
            conn = http.client.HTTPConnection(host, port, source_address=src)
        n += 1


def attackers(first, count, stop, results):
    counts = {}
    threads = [threading.Thread(target=attacker, args=(first + k, stop, counts), daemon=True) for k in range(count)]
    for t in threads: t.start()
    for t in threads: t.join()
    results.put(counts)


if __name__ == "__main__":
    p50a, p99a, na = probe(secs)
    print(f"alone:       p50 {p50a:.2f} ms  p99 {p99a:.2f} ms  ({na} requests)")
    stop, results = multiprocessing.Event(), multiprocessing.Queue()
    procs = [multiprocessing.Process(target=attackers, args=(k * 10, 10, stop, results)) for k in range(5)]
    for p in procs: p.start()
    time.sleep(0.5)
    p50f, p99f, nf = probe(secs)
    stop.set()
    counts = {}
    for _ in procs:
        for status, n in results.get(timeout=30).items():
            counts[status] = counts.get(status, 0) + n
    for p in procs: p.join(timeout=10)
    print(f"under flood: p50 {p50f:.2f} ms  p99 {p99f:.2f} ms  ({nf} requests); 50 clients, answers by status: {dict(sorted(counts.items()))}")
    print(f"ratio p99 flood : alone = {p99f / p99a:.2f}")
