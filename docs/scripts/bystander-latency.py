"""Another tenant's latency while one member floods the server with its costliest analytics
query, against a running `fahwa serve --demo`:
python3 docs/scripts/bystander-latency.py [BASE_URL] [SECONDS] [ATTACKERS]
(defaults http://127.0.0.1:8080, 20 s, 4 threads). The attacker is the demo tenant's owner
asking for two-year Overviews as fast as it can; the bystander is a tenant of its own asking for
30-day Overviews one after another. Every range ends at a different second, so nothing is served
from the response cache. Run it against a server with rate limits on and one with
FAHWA_RATE_LIMITS=false to see what they are worth."""
import json, statistics, sys, threading, time, urllib.error, urllib.request, uuid
from datetime import datetime, timedelta, timezone

base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080") + "/api/v1/graphql"
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
attackers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
# The contract's Overview, as a dashboard sends it.
OVERVIEW = """fragment Series on MetricSeries { total points { bucket value } }
query($r: TimeRangeInput!, $g: Granularity!) { analytics(range: $r, granularity: $g) {
  activeUsers { ...Series } newUsers { ...Series } events { ...Series }
  revenue { mrr { ...Series } arr { ...Series } payingCustomers { ...Series } arpu { ...Series }
    customerChurnRate { ...Series } revenueChurnRate { ...Series } ltv
    mrrMovements { bucket newMrr expansionMrr contractionMrr churnedMrr reactivationMrr netNewMrr } } } }"""


def post(body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(base, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def overview(token, days, granularity, shift):
    end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=shift)
    r = {"from": (end - timedelta(days=days)).isoformat(), "to": end.isoformat()}
    return post({"query": OVERVIEW, "variables": {"r": r, "g": granularity}}, token)


owner = post({"query": "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
              "variables": {"i": {"tenantSlug": "demo", "email": "owner@demo.fahwa.dev",
                                  "password": "demo-owner-password"}}})["data"]["logIn"]["accessToken"]
slug = "bystander-" + uuid.uuid4().hex[:8]
signed = post({"query": "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
               "variables": {"i": {"tenantName": slug, "tenantSlug": slug, "name": "B",
                                   "email": f"b@{slug}.example.com", "password": "a long enough passphrase"}}})
bystander = signed["data"]["signUp"]["accessToken"]


def measure(duration, shift0):
    times, i, stop = [], 0, time.monotonic() + duration
    while time.monotonic() < stop:
        i += 1
        t0 = time.perf_counter()
        out = overview(bystander, 30, "DAY", shift0 + i)
        assert "errors" not in out, out
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times


def attack(stop, counts, k):
    i = 0
    while not stop.is_set():
        i += 1
        try:
            out = overview(owner, 730, "DAY", 100_000 * (k + 1) + i)
            key = "refused" if out.get("errors") else "ran"
        except urllib.error.URLError:
            key = "failed"
        counts[key] = counts.get(key, 0) + 1


def summary(label, times):
    print(f"{label}: {len(times)} requests, p50 {statistics.median(times):.1f} ms, "
          f"p95 {times[int(len(times) * 0.95) - 1]:.1f} ms, max {times[-1]:.1f} ms")


summary("bystander alone", measure(seconds / 2, 1_000))
stop, counts = threading.Event(), {}
threads = [threading.Thread(target=attack, args=(stop, counts, k)) for k in range(attackers)]
for t in threads:
    t.start()
time.sleep(1)
summary(f"bystander under attack ({attackers} threads)", measure(seconds, 50_000))
stop.set()
for t in threads:
    t.join()
print(f"attacker's two-year Overviews: {counts}")
