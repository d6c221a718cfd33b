"""The server's memory while it is sent what the resource-attack tests send, concurrently and
repeatedly, against a running `fahwa serve --demo` whose process id is given:
python3 docs/scripts/attack-memory.py PID [BASE_URL] [SECONDS] [THREADS]
(defaults http://127.0.0.1:8080, 20 s, 8 threads). Prints the resident memory before, its peak
during the attack (VmHWM, reset before it where the kernel allows), and after."""
import json, sys, threading, time, urllib.error, urllib.request, uuid
from datetime import datetime, timedelta, timezone

pid = int(sys.argv[1])
base = (sys.argv[2] if len(sys.argv) > 2 else "http://127.0.0.1:8080")
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 8


def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024  # MiB
    return -1


def post(path, body, token, raw=False):
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={
        "content-type": "application/json", "authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError):
        return 0


slug = "attacker-" + uuid.uuid4().hex[:8]
req = urllib.request.Request(base + "/api/v1/graphql", data=json.dumps({
    "query": "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
    "variables": {"i": {"tenantName": slug, "tenantSlug": slug, "name": "A",
                        "email": f"a@{slug}.example.com", "password": "a long enough passphrase"}}}).encode(),
    headers={"content-type": "application/json"})
token = json.loads(urllib.request.urlopen(req).read())["data"]["signUp"]["accessToken"]

big = b'{"query":"{ me { id } }","variables":{"p":"' + b"x" * (10 * 1024 * 1024) + b'"}}'
end = datetime.now(timezone.utc)
steps = [f"s{i}" for i in range(100_000)]
funnel = {"query": "query($r: TimeRangeInput!, $s: [String!]!) { analytics(range: $r, granularity: DAY) "
                   "{ funnel(steps: $s, conversionWindowHours: 24) { steps { name } } } }",
          "variables": {"r": {"from": (end - timedelta(days=7)).isoformat(), "to": end.isoformat()}, "s": steps}}
events = {"events": [{"name": "a", "userId": f"u{i}"} for i in range(10_001)]}
batch = [{"query": "{ me { id } }"}] * 11
attacks = [
    ("10 MB body", lambda: post("/api/v1/graphql", big, token, raw=True)),
    ("100,000 funnel steps", lambda: post("/api/v1/graphql", funnel, token)),
    ("10,001 events", lambda: post("/api/v1/events", events, token)),
    ("batch of 11", lambda: post("/api/v1/graphql", batch, token)),
]
counts = {name: {} for name, _ in attacks}
stop = threading.Event()


def attack(k):
    name, send = attacks[k % len(attacks)]
    while not stop.is_set():
        code = send()
        counts[name][code] = counts[name].get(code, 0) + 1


before = status("VmRSS")
try:
    open(f"/proc/{pid}/clear_refs", "w").write("5")  # resets VmHWM
except OSError:
    pass
workers = [threading.Thread(target=attack, args=(k,)) for k in range(threads)]
for w in workers:
    w.start()
time.sleep(seconds)
stop.set()
for w in workers:
    w.join()
peak = status("VmHWM")
time.sleep(2)
print(f"resident memory: before {before} MiB, peak during {seconds:.0f} s of attack {peak} MiB, after {status('VmRSS')} MiB")
for name, by_status in counts.items():
    print(f"  {name}: answers by status {by_status}")
