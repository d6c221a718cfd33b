"""What the contract's operations cost in rate-limit points, read from `extensions.cost` of a
running `fahwa serve --demo`: python3 docs/scripts/operation-costs.py [BASE_URL] [CONTRACT_DIR]
(defaults http://127.0.0.1:8080 and ../shared/contract). Every answer is asked for twice with
different ranges so that none comes from the response cache (which costs 1 point)."""
import json, pathlib, re, sys, urllib.request
from datetime import datetime, timedelta, timezone

base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080") + "/api/v1/graphql"
contract = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "../shared/contract")


def post(body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(base, data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read()), dict(r.headers)


def document(file, name):
    """Operation `name` of the file, with the file's fragments."""
    blocks = re.split(r"(?m)^(?=query |mutation |subscription |fragment )", (contract / file).read_text())
    op = next(b for b in blocks if re.match(rf"(query|mutation|subscription) {name}\b", b))
    used = [b for b in blocks if b.startswith("fragment ") and "..." + b.split()[1] in op]
    return "\n".join([op] + used)


def run(token, file, name, variables):
    out, headers = post({"query": document(file, name), "operationName": name, "variables": variables}, token)
    assert "errors" not in out, (name, out)
    return out["extensions"]["cost"]["points"], headers


def log_in(role):
    body = {"query": "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
            "variables": {"i": {"tenantSlug": "demo", "email": f"{role}@demo.fahwa.dev",
                                "password": f"demo-{role}-password"}}}
    out, _ = post(body)
    return out["data"]["logIn"]["accessToken"]


# Ends at a time no earlier request used, so nothing is served from the response cache.
end = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=7)


asked = [0]


def span(days):
    """A range of `days` ending a second earlier than the last one asked for."""
    asked[0] += 1
    to = end - timedelta(seconds=asked[0])
    return {"from": (to - timedelta(days=days)).isoformat(), "to": to.isoformat()}


owner = log_in("owner")
rows = []
for days, granularity in [(7, "DAY"), (30, "DAY"), (90, "DAY"), (365, "WEEK"), (730, "MONTH")]:
    points, _ = run(owner, "analytics.graphql", "Overview", {"range": span(days), "granularity": granularity})
    rows.append((f"Overview, {days} days by {granularity}", points))
dashboard = 0
for name, variables in [
    ("Overview", {"range": span(30), "granularity": "DAY"}),
    ("Engagement", {"range": span(30), "granularity": "DAY"}),
    ("Retention", {"range": span(30), "granularity": "WEEK", "periods": 4}),
    ("Funnel", {"range": span(30), "steps": ["signup", "activate"], "windowHours": 72}),
]:
    points, _ = run(owner, "analytics.graphql", name, variables)
    rows.append((f"{name}, 30 days", points))
    dashboard += points
rows.append(("a dashboard load (the four above)", dashboard))
for file, name, variables in [
    ("reports.graphql", "Reports", {"first": 20}),
    ("tenant.graphql", "Members", {"first": 20}),
    ("tenant.graphql", "AuditLog", {"first": 20}),
    ("tenant.graphql", "UpdateTenant", {"input": {"name": "Demo"}}),
    ("ingest.graphql", "IngestEvents", {"events": [{"name": "cost-probe", "userId": "cost-probe"}]}),
]:
    points, headers = run(owner, file, name, variables)
    rows.append((f"{name}", points))
width = max(len(r[0]) for r in rows)
for label, points in rows:
    print(f"{label:<{width}}  {points:>4} points")
for role in ["owner", "admin", "analyst", "viewer"]:
    _, headers = post({"query": "{ __typename }"}, log_in(role))
    limit = headers.get("ratelimit-limit") or headers.get("RateLimit-Limit")
    print(f"{role:<8} budget now: {limit} points a minute ({int(limit) // dashboard} dashboard loads)")
