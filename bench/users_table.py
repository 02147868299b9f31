"""User Management page with 10,000 users: time of a server-rendered page (50 rows, sorted,
filtered) against the same page from the JSON API, both measured in this run.
Usage: users_table.py URL USERNAME PASSWORD [users]. Creates the users through the API."""
import http.client, json, sys, threading, time
from urllib.parse import urlparse

url, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
n_users = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
host, port = urlparse(url).hostname, urlparse(url).port

def conn():
    return http.client.HTTPConnection(host, port)

c = conn()
c.request("POST", "/api/v1/auth/login", json.dumps({"username": user, "password": pw}), {"content-type": "application/json"})
r = c.getresponse(); body = json.load(r)
cookie = r.getheader("set-cookie").split(";")[0]
csrf = body["csrf_token"]
c.request("POST", "/api/v1/tokens", json.dumps({"name": "bench"}), {"content-type": "application/json", "cookie": cookie, "x-csrf-token": csrf})
token = json.load(c.getresponse())["secret"]

def create(start, step):
    k = conn()
    for i in range(start, n_users, step):
        name = f"user{i:05d}"
        k.request("POST", "/api/v1/users", json.dumps({"username": name, "email": f"{name}@lab{i % 40}.example", "first_name": f"First{i}", "last_name": f"Last{i % 997}"}),
                  {"content-type": "application/json", "authorization": f"Bearer {token}"})
        resp = k.getresponse(); resp.read()
        assert resp.status in (201, 409), resp.status

t0 = time.time()
threads = [threading.Thread(target=create, args=(s, 4)) for s in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(f"created {n_users} users in {time.time() - t0:.1f} s")

def timed(path, headers, rounds=200):
    k = conn(); lat = []
    for _ in range(rounds):
        t = time.perf_counter()
        k.request("GET", path, headers=headers)
        resp = k.getresponse(); data = resp.read()
        assert resp.status == 200, (resp.status, data[:200])
        lat.append((time.perf_counter() - t) * 1000)
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)], len(data)

query = "q=lab1&sort=-email&page=3"
page = timed(f"/admin/users?{query}", {"cookie": cookie})
api = timed(f"/api/v1/users?{query}&per_page=50", {"authorization": f"Bearer {token}"})
print(f"HTML page  /admin/users?{query}: p50 {page[0]:.2f} ms  p99 {page[1]:.2f} ms  ({page[2]} bytes)")
print(f"JSON API   /api/v1/users?{query}: p50 {api[0]:.2f} ms  p99 {api[1]:.2f} ms  ({api[2]} bytes)")
print(f"ratio page : api (p50) = {page[0] / api[0]:.2f}")
