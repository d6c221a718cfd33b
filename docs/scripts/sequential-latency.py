"""Sequential latency of a 90-day analytics query and of logIn against a running `fahwa serve --demo`
on 127.0.0.1:8090: python3 docs/scripts/sequential-latency.py REQUESTS LOGINS (see docs/performance-log.md)."""
import json, time, urllib.request, statistics, sys
base = "http://127.0.0.1:8090/api/v1/graphql"
def post(body, token=None):
    req = urllib.request.Request(base, data=json.dumps(body).encode(), headers={"content-type": "application/json", **({"authorization": "Bearer " + token} if token else {})})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    return out, (time.perf_counter() - t0) * 1000
login = {"query": "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }", "variables": {"i": {"tenantSlug": "demo", "email": "owner@demo.fahwa.dev", "password": "demo-owner-password"}}}
times_login = []
for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 5):
    out, ms = post(login)
    assert "errors" not in out, out
    times_login.append(ms)
token = out["data"]["logIn"]["accessToken"]
q = "query($r: TimeRangeInput!) { analytics(range: $r, granularity: DAY) { activeUsers { total } events { total } revenue { mrr { total } } } }"
times = []
for i in range(int(sys.argv[1])):
    out, ms = post({"query": q, "variables": {"r": {"from": "2026-09-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}}}, token)
    assert "errors" not in out, out
    times.append(ms)
times.sort()
print(f"Overview-like 90 days, {len(times)} sequential requests: p50 {statistics.median(times):.1f} ms, p95 {times[int(len(times)*0.95)-1]:.1f} ms, max {times[-1]:.1f} ms; logIn median {statistics.median(times_login):.1f} ms")
