"""Whether the time of an answer tells another tenant's object from a missing one, against a
running `fahwa serve --demo`: python3 docs/scripts/id-timing.py [BASE_URL] [ROUNDS]
(defaults http://127.0.0.1:8080, 300). A tenant of its own asks for the demo tenant's report
(`report(id)`) and for a random id, alternating, and the script prints both latency
distributions."""
import json, random, statistics, sys, time, urllib.request, uuid

base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080") + "/api/v1/graphql"
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300


def post(body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(base, data=json.dumps(body).encode(), headers=headers)
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        out = json.loads(r.read())
    return out, (time.perf_counter() - t0) * 1000


owner, _ = post({"query": "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
                 "variables": {"i": {"tenantSlug": "demo", "email": "owner@demo.fahwa.dev",
                                     "password": "demo-owner-password"}}})
owner = owner["data"]["logIn"]["accessToken"]
reports, _ = post({"query": "{ reports(first: 1) { edges { node { id } } } }"}, owner)
theirs = reports["data"]["reports"]["edges"][0]["node"]["id"]
slug = "timing-" + uuid.uuid4().hex[:8]
signed, _ = post({"query": "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
                  "variables": {"i": {"tenantName": slug, "tenantSlug": slug, "name": "T",
                                      "email": f"t@{slug}.example.com", "password": "a long enough passphrase"}}})
attacker = signed["data"]["signUp"]["accessToken"]
query = "query($id: ID!) { report(id: $id) { id name } }"
times = {"another tenant's": [], "missing": []}
answers = {}
for i in range(rounds):
    pair = [("another tenant's", theirs), ("missing", str(uuid.uuid4()))]
    random.shuffle(pair)
    for label, rid in pair:
        out, ms = post({"query": query, "variables": {"id": rid}}, attacker)
        out.pop("extensions", None)
        answers.setdefault(label, json.dumps(out).replace(rid, "<id>"))
        if i >= 20:  # warm-up
            times[label].append(ms)
for label, ts in times.items():
    ts.sort()
    print(f"{label} id: {len(ts)} requests, p50 {statistics.median(ts):.2f} ms, "
          f"p95 {ts[int(len(ts) * 0.95) - 1]:.2f} ms, mean {statistics.mean(ts):.2f} ms")
print("same answer:", answers["another tenant's"] == answers["missing"], answers["missing"])
