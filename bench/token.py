"""Signs in and prints a fresh API token: token.py URL USERNAME PASSWORD."""
import json, sys, urllib.request
url, user, pw = sys.argv[1:4]
req = urllib.request.Request(f"{url}/api/v1/auth/login", json.dumps({"username": user, "password": pw}).encode(), {"content-type": "application/json"})
with urllib.request.urlopen(req) as r:
    cookie = r.headers["set-cookie"].split(";")[0]
    csrf = json.load(r)["csrf_token"]
req = urllib.request.Request(f"{url}/api/v1/tokens", json.dumps({"name": "bench"}).encode(),
                             {"content-type": "application/json", "cookie": cookie, "x-csrf-token": csrf})
with urllib.request.urlopen(req) as r:
    print(json.load(r)["secret"])
