//! Broken function level authorization (OWASP API5:2023): every mutation is refused to every
//! caller below the role it is for. The mutations are found by walking the schema the code
//! builds, and each must be classified in `CASES` with the least role that may call it (the
//! contract README's role table, or the resolver's own check where the table is silent): a
//! mutation added later fails this test until someone says who it is for.
//!
//! Each case runs in a tenant of its own. Every caller below the case's role sends the same
//! request: members of each lower role, an API key of each scope (unless the case is for that
//! scope) and a caller without credentials. Each must get a refusal (`FORBIDDEN` for members,
//! `FORBIDDEN` or `UNAUTHENTICATED` for keys, `UNAUTHENTICATED` without credentials), no data,
//! and must leave the tenant as it was: every row of every table with a `tenant_id` (the audit
//! log included, so a refusal writes no record of the action) and the requests the fake Stripe
//! saw. Only then does a member of the least role send that very request, which must succeed and
//! change the tenant: proof that the request was valid and that the refusals were down to the
//! caller alone, and that a change by it would have been seen.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use apollo_compiler::Schema;
use apollo_compiler::ast::{FieldDefinition, OperationType};
use futures_util::StreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::fake_stripe::FakeStripe;
use crate::harness::{PASSWORD, Session, TestApp, codes};
use crate::probes::{self, schema};

const STRIPE_KEY: &str = "sk_test_role_escalation";
/// Input objects may refer to themselves through optional fields.
/// Below this many mutations checked, the walk or the table has gone wrong.
const MIN_CHECKED: usize = 15;
/// Columns that every request of their member or key moves: not a change made by a mutation.
const MOVED_BY_ANY_REQUEST: [&str; 2] = ["last_active_at", "last_used_at"];

/// The contract's roles, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Viewer,
    Analyst,
    Admin,
    Owner,
}

impl Role {
    const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Analyst, Role::Viewer];

    fn name(self) -> &'static str {
        match self {
            Role::Owner => "OWNER",
            Role::Admin => "ADMIN",
            Role::Analyst => "ANALYST",
            Role::Viewer => "VIEWER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Ingest,
    Read,
}

impl Scope {
    const ALL: [Scope; 2] = [Scope::Read, Scope::Ingest];

    fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "INGEST",
            Scope::Read => "READ",
        }
    }
}

/// Who may call a mutation.
#[derive(Debug, Clone, Copy)]
enum Allowed {
    /// Signing up and in: nothing to escalate, so not checked.
    Anyone,
    /// Members of at least this role.
    Members(Role),
    /// Members of at least this role, and API keys with this scope.
    MembersOrKey(Role, Scope),
}

impl Allowed {
    fn label(self) -> String {
        match self {
            Allowed::Anyone => "anyone".into(),
            Allowed::Members(role) => format!("{}+", role.name()),
            Allowed::MembersOrKey(role, scope) => {
                format!("{}+, {} key", role.name(), scope.name())
            }
        }
    }
}

/// An argument the types alone do not tell how to make valid.
#[derive(Debug, Clone, Copy)]
enum Arg {
    /// The ID of a member of this role, added for the case.
    Member(Role),
    /// The ID of an API key made for the case.
    ApiKey,
    /// The ID of a report made for the case by the tenant's caller of this role.
    Report(Role),
    /// The ID of a Stripe integration connected for the case.
    Integration,
    /// The tenant's slug.
    Slug,
    /// This JSON value.
    Json(&'static str),
}

/// One way of calling a mutation, and who may.
struct Case {
    mutation: &'static str,
    /// What sets this case apart, for a mutation whose rule depends on its arguments.
    case: &'static str,
    allowed: Allowed,
    /// By argument path (input fields after a dot; a list is entered through its element).
    /// Other required arguments get the smallest valid value of their type.
    args: &'static [(&'static str, Arg)],
}

const fn case(
    mutation: &'static str,
    case: &'static str,
    allowed: Allowed,
    args: &'static [(&'static str, Arg)],
) -> Case {
    Case {
        mutation,
        case,
        allowed,
        args,
    }
}

const ANYONE: Allowed = Allowed::Anyone;
const ANALYST: Allowed = Allowed::Members(Role::Analyst);
const ADMIN: Allowed = Allowed::Members(Role::Admin);
const OWNER: Allowed = Allowed::Members(Role::Owner);
const ADMIN_OR_INGEST_KEY: Allowed = Allowed::MembersOrKey(Role::Admin, Scope::Ingest);

/// Every mutation of the schema, by the least role that may call it. Where the rule depends
/// on the arguments (granting OWNER or ADMIN takes an OWNER; ANALYSTs write their own reports,
/// ADMINs anyone's), each side of it is a case of its own.
const CASES: &[Case] = &[
    case("signUp", "", ANYONE, &[]),
    case("logIn", "", ANYONE, &[]),
    case("refreshSession", "", ANYONE, &[]),
    case("logOut", "", ANYONE, &[]),
    case(
        "addMember",
        "as VIEWER",
        ADMIN,
        &[("input.role", Arg::Json(r#""VIEWER""#))],
    ),
    case(
        "addMember",
        "as ADMIN",
        OWNER,
        &[("input.role", Arg::Json(r#""ADMIN""#))],
    ),
    case(
        "addMember",
        "as OWNER",
        OWNER,
        &[("input.role", Arg::Json(r#""OWNER""#))],
    ),
    case(
        "updateMemberRole",
        "VIEWER to ANALYST",
        ADMIN,
        &[
            ("userId", Arg::Member(Role::Viewer)),
            ("role", Arg::Json(r#""ANALYST""#)),
        ],
    ),
    case(
        "updateMemberRole",
        "VIEWER to ADMIN",
        OWNER,
        &[
            ("userId", Arg::Member(Role::Viewer)),
            ("role", Arg::Json(r#""ADMIN""#)),
        ],
    ),
    case(
        "updateMemberRole",
        "VIEWER to OWNER",
        OWNER,
        &[
            ("userId", Arg::Member(Role::Viewer)),
            ("role", Arg::Json(r#""OWNER""#)),
        ],
    ),
    case(
        "updateMemberRole",
        "ADMIN to VIEWER",
        OWNER,
        &[
            ("userId", Arg::Member(Role::Admin)),
            ("role", Arg::Json(r#""VIEWER""#)),
        ],
    ),
    case(
        "removeMember",
        "a VIEWER",
        ADMIN,
        &[("userId", Arg::Member(Role::Viewer))],
    ),
    case(
        "removeMember",
        "an ADMIN",
        OWNER,
        &[("userId", Arg::Member(Role::Admin))],
    ),
    case(
        "removeMember",
        "an OWNER",
        OWNER,
        &[("userId", Arg::Member(Role::Owner))],
    ),
    case(
        "updateTenant",
        "",
        ADMIN,
        &[
            ("input.name", Arg::Json(r#""Renamed Inc.""#)),
            ("input.timezone", Arg::Json(r#""Europe/Berlin""#)),
        ],
    ),
    case("createApiKey", "", ADMIN, &[]),
    case("revokeApiKey", "", ADMIN, &[("id", Arg::ApiKey)]),
    case("deleteTenant", "", OWNER, &[("confirmSlug", Arg::Slug)]),
    case("ingestEvents", "", ADMIN_OR_INGEST_KEY, &[]),
    case(
        "ingestRevenueChanges",
        "",
        ADMIN_OR_INGEST_KEY,
        &[("changes.currency", Arg::Json(r#""USD""#))],
    ),
    // Rates change what revenue is worth: an ADMIN's, not the ingesting keys' (contract
    // README: INGEST sends events and revenue changes).
    case(
        "setExchangeRates",
        "",
        ADMIN,
        &[("rates.currency", Arg::Json(r#""EUR""#))],
    ),
    case("createReport", "", ANALYST, &[]),
    case(
        "updateReport",
        "own",
        ANALYST,
        &[
            ("id", Arg::Report(Role::Analyst)),
            ("input.name", Arg::Json(r#""Renamed""#)),
        ],
    ),
    case(
        "updateReport",
        "another's",
        ADMIN,
        &[
            ("id", Arg::Report(Role::Owner)),
            ("input.name", Arg::Json(r#""Renamed""#)),
        ],
    ),
    case(
        "deleteReport",
        "own",
        ANALYST,
        &[("id", Arg::Report(Role::Analyst))],
    ),
    case(
        "deleteReport",
        "another's",
        ADMIN,
        &[("id", Arg::Report(Role::Owner))],
    ),
    case(
        "runReport",
        "own",
        ANALYST,
        &[("id", Arg::Report(Role::Analyst))],
    ),
    case(
        "runReport",
        "another's",
        ADMIN,
        &[("id", Arg::Report(Role::Owner))],
    ),
    case(
        "connectIntegration",
        "",
        ADMIN,
        &[
            ("input.provider", Arg::Json(r#""STRIPE""#)),
            (
                "input.credentials",
                // STRIPE_KEY, which the fake Stripe takes.
                Arg::Json(r#"{ "apiKey": "sk_test_role_escalation" }"#),
            ),
        ],
    ),
    case("syncIntegration", "", ADMIN, &[("id", Arg::Integration)]),
    case(
        "disconnectIntegration",
        "",
        ADMIN,
        &[("id", Arg::Integration)],
    ),
];

fn mutations(schema: &Schema) -> Vec<&FieldDefinition> {
    schema
        .root_operation(OperationType::Mutation)
        .and_then(|name| schema.get_object(name))
        .map(|object| object.fields.values().map(|f| &***f).collect())
        .unwrap_or_default()
}

/// What is wrong between the schema's mutations and the classified ones.
fn unclassified(in_schema: &[&str], cases: &[Case]) -> Vec<String> {
    let classified: BTreeSet<&str> = cases.iter().map(|c| c.mutation).collect();
    let in_schema: BTreeSet<&str> = in_schema.iter().copied().collect();
    let mut wrong: Vec<String> = in_schema
        .difference(&classified)
        .map(|m| {
            format!(
                "Mutation.{m} is not classified: add it to CASES in tests/api/role_escalation.rs \
                 with the least role that may call it"
            )
        })
        .collect();
    wrong.extend(
        classified
            .difference(&in_schema)
            .map(|m| format!("CASES names Mutation.{m}, which the schema does not have")),
    );
    wrong
}

/// The document calling `field` with its required arguments, and those that `given` sets.
fn document(
    schema: &Schema,
    field: &FieldDefinition,
    given: &[(Vec<String>, Value)],
) -> (String, Value) {
    probes::document(schema, "mutation", "Escalate", field, given)
}

/// A tenant of its own for one case, with a member of every role up to the case's and a key
/// of each scope.
struct Tenant {
    slug: String,
    id: Uuid,
    members: BTreeMap<Role, Session>,
    keys: Vec<(Scope, String)>,
}

impl Tenant {
    async fn new(t: &TestApp, slug: String, up_to: Role) -> Tenant {
        let owner = t.sign_up(&slug).await;
        let id = Uuid::parse_str(&owner.tenant_id).unwrap();
        let mut keys = Vec::new();
        for scope in Scope::ALL {
            keys.push((scope, t.api_key(&owner.access, &[scope.name()]).await));
        }
        let mut members = BTreeMap::new();
        for role in Role::ALL {
            if role < Role::Owner && role <= up_to {
                members.insert(role, t.member(&owner, &slug, role.name()).await);
            }
        }
        members.insert(Role::Owner, owner);
        Tenant {
            slug,
            id,
            members,
            keys,
        }
    }

    fn owner(&self) -> &str {
        &self.members[&Role::Owner].access
    }
}

/// The ID at `pointer` in the answer's data, or why there is none.
fn created(r: &Value, pointer: &str) -> Value {
    let id = r["data"].pointer(pointer).filter(|id| id.is_string());
    id.cloned()
        .unwrap_or_else(|| panic!("no ID at {pointer}: {r}"))
}

/// The value of `arg` in the case's tenant: its objects are made here, through the contract.
async fn resolve(t: &TestApp, tenant: &Tenant, arg: Arg) -> Value {
    let owner = Some(tenant.owner());
    match arg {
        Arg::Member(role) => {
            let email = format!(
                "target-{}@{}.example.com",
                Uuid::new_v4().simple(),
                tenant.slug
            );
            let input = json!({ "name": "Target", "email": email, "role": role.name(), "password": PASSWORD });
            let r = t
                .op(
                    owner,
                    "tenant.graphql",
                    "AddMember",
                    json!({ "input": input }),
                )
                .await;
            created(&r, "/addMember/id")
        }
        Arg::ApiKey => {
            let input = json!({ "name": "target", "scopes": ["READ"] });
            let r = t
                .op(
                    owner,
                    "tenant.graphql",
                    "CreateApiKey",
                    json!({ "input": input }),
                )
                .await;
            created(&r, "/createApiKey/apiKey/id")
        }
        Arg::Report(role) => {
            let input = json!({
                "name": format!("{}'s report", role.name()),
                "widgets": [{ "title": "Events", "metric": "EVENTS", "granularity": "DAY", "range": "LAST_7_DAYS" }],
            });
            let by = Some(tenant.members[&role].access.as_str());
            let r = t
                .op(
                    by,
                    "reports.graphql",
                    "CreateReport",
                    json!({ "input": input }),
                )
                .await;
            created(&r, "/createReport/id")
        }
        Arg::Integration => {
            let input = json!({ "provider": "STRIPE", "credentials": { "apiKey": STRIPE_KEY } });
            let r = t
                .op(
                    owner,
                    "integrations.graphql",
                    "ConnectIntegration",
                    json!({ "input": input }),
                )
                .await;
            created(&r, "/connectIntegration/id")
        }
        Arg::Slug => json!(tenant.slug),
        Arg::Json(text) => serde_json::from_str(text).expect("a JSON value in CASES"),
    }
}

/// All that a mutation could change in a tenant: a digest of the rows of each table with a
/// `tenant_id` (and of the tenant's own row), the actions of its audit log, and how many
/// requests reached the fake Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    tables: BTreeMap<String, (i64, String)>,
    audit: Vec<String>,
    stripe_requests: usize,
}

impl Snapshot {
    fn differences(&self, after: &Snapshot) -> Vec<String> {
        let mut changed: Vec<String> = self
            .tables
            .iter()
            .filter(|(table, rows)| after.tables.get(*table) != Some(*rows))
            .map(|(table, (n, _))| {
                let now = after.tables.get(table).map_or(0, |(n, _)| *n);
                format!("{table} ({n} rows, now {now})")
            })
            .collect();
        if let Some(new) = after.audit.get(self.audit.len()..)
            && !new.is_empty()
        {
            changed.push(format!("audit records {new:?}"));
        }
        if self.stripe_requests != after.stripe_requests {
            changed.push(format!(
                "{} requests to Stripe",
                after.stripe_requests - self.stripe_requests
            ));
        }
        changed
    }
}

/// The one query that digests a tenant's rows, table by table.
async fn snapshot_query(pg: &tokio_postgres::Client) -> String {
    let tables = pg
        .query(
            "SELECT c.relname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attname = 'tenant_id' AND NOT a.attisdropped AND n.nspname = 'public' \
             AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let mut tables: Vec<(String, &str)> = tables
        .iter()
        .map(|row| (row.get::<_, String>(0), "tenant_id"))
        .collect();
    assert!(tables.len() >= 10, "tables with a tenant_id: {tables:?}");
    tables.push(("tenants".into(), "id"));
    let moved: String = MOVED_BY_ANY_REQUEST
        .iter()
        .map(|c| format!(" - '{c}'"))
        .collect();
    tables
        .iter()
        .map(|(table, key)| {
            format!(
                "SELECT '{table}'::text, count(*), md5(coalesce(string_agg(r, ',' ORDER BY r), '')) \
                 FROM (SELECT (to_jsonb(x){moved})::text AS r FROM \"{table}\" x WHERE x.{key} = $1) rows"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// Takes snapshots of tenants, over one connection.
struct Watch<'a> {
    pg: tokio_postgres::Client,
    query: String,
    stripe: &'a FakeStripe,
}

impl Watch<'_> {
    async fn snapshot(&self, tenant: Uuid) -> Snapshot {
        let tables = self
            .pg
            .query(&self.query, &[&tenant])
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();
        let audit = self
            .pg
            .query(
                "SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY at, id",
                &[&tenant],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        Snapshot {
            tables,
            audit,
            stripe_requests: self.stripe.request_count(),
        }
    }
}

/// A caller below the case's role, and the codes its refusal may carry.
struct Refused<'a> {
    label: String,
    token: Option<&'a str>,
    codes: &'static [&'static str],
}

fn refused<'a>(tenant: &'a Tenant, allowed: Allowed) -> (Vec<Refused<'a>>, &'a Session) {
    let least = least(allowed);
    let key_scope = match allowed {
        Allowed::MembersOrKey(_, scope) => Some(scope),
        _ => None,
    };
    let mut callers: Vec<Refused<'a>> = tenant
        .members
        .iter()
        .rev()
        .filter(|(role, _)| **role < least)
        .map(|(role, s)| Refused {
            label: role.name().into(),
            token: Some(s.access.as_str()),
            codes: &["FORBIDDEN"],
        })
        .collect();
    callers.extend(
        tenant
            .keys
            .iter()
            .filter(|(scope, _)| Some(*scope) != key_scope)
            .map(|(scope, secret)| Refused {
                label: format!("{} key", scope.name()),
                token: Some(secret.as_str()),
                codes: &["FORBIDDEN", "UNAUTHENTICATED"],
            }),
    );
    callers.push(Refused {
        label: "anonymous".into(),
        token: None,
        codes: &["UNAUTHENTICATED"],
    });
    (callers, &tenant.members[&least])
}

/// One line of the printed table.
struct Row {
    mutation: &'static str,
    case: &'static str,
    allowed: String,
    refused: Vec<String>,
    control: String,
}

fn least(allowed: Allowed) -> Role {
    match allowed {
        Allowed::Members(role) | Allowed::MembersOrKey(role, _) => role,
        Allowed::Anyone => unreachable!("not checked"),
    }
}

/// A case's tenant, and the arguments that name its objects.
struct Prepared {
    tenant: Tenant,
    given: Vec<(Vec<String>, Value)>,
}

async fn prepare(t: &TestApp, n: usize, case: &Case) -> Prepared {
    let tenant = Tenant::new(t, format!("escalation-{n}"), least(case.allowed)).await;
    let mut given = Vec::new();
    for (path, arg) in case.args {
        let path = path.split('.').map(str::to_string).collect();
        given.push((path, resolve(t, &tenant, *arg).await));
    }
    Prepared { tenant, given }
}

/// Runs one case: the refusals, then the control.
async fn check(
    t: &TestApp,
    watch: &Watch<'_>,
    schema: &Schema,
    case: &Case,
    prepared: &Prepared,
    problems: &mut Vec<String>,
) -> Row {
    let least = least(case.allowed);
    let Prepared { tenant, given } = prepared;
    let field = mutations(schema)
        .into_iter()
        .find(|f| f.name == case.mutation)
        .expect("classified mutations are in the schema");
    let (doc, variables) = document(schema, field, given);
    let name = match case.case {
        "" => case.mutation.to_string(),
        which => format!("{} ({which})", case.mutation),
    };
    let mut row = Row {
        mutation: case.mutation,
        case: case.case,
        allowed: case.allowed.label(),
        refused: Vec::new(),
        control: String::new(),
    };

    let (callers, control) = refused(tenant, case.allowed);
    // Each call is judged against the state just before it, so that one that got through does
    // not blame the callers after it.
    let mut before = watch.snapshot(tenant.id).await;
    for caller in callers {
        let answer = t.gql(caller.token, &doc, variables.clone()).await;
        let got = codes(&answer);
        let mut wrong = Vec::new();
        if !answer["data"][case.mutation].is_null() {
            wrong.push("answered with data".to_string());
        }
        if got.is_empty() || got.iter().any(|c| !caller.codes.contains(&c.as_str())) {
            wrong.push(format!("codes {got:?}, not one of {:?}", caller.codes));
        }
        let after = watch.snapshot(tenant.id).await;
        let changed = before.differences(&after);
        if !changed.is_empty() {
            wrong.push(format!("changed {}", changed.join(", ")));
        }
        before = after;
        if wrong.is_empty() {
            row.refused.push(caller.label);
        } else {
            row.refused.push(format!("{} (NOT REFUSED)", caller.label));
            problems.push(format!(
                "{name} by {}: {}\n    request: {doc} {variables}\n    response: {answer}",
                caller.label,
                wrong.join("; ")
            ));
        }
    }

    let answer = t.gql(Some(&control.access), &doc, variables.clone()).await;
    let after = watch.snapshot(tenant.id).await;
    row.control = if !answer["errors"].is_null() || answer["data"][case.mutation].is_null() {
        problems.push(format!(
            "{name} by {} (the control) failed, so its refusals prove nothing: give it valid \
             arguments in CASES\n    request: {doc} {variables}\n    response: {answer}",
            least.name()
        ));
        format!("{} FAILED", least.name())
    } else if before.differences(&after).is_empty() {
        problems.push(format!(
            "{name} by {} (the control) changed nothing that the snapshot sees, so an unchanged \
             snapshot after a refusal proves nothing\n    request: {doc} {variables}",
            least.name()
        ));
        format!("{} changed nothing", least.name())
    } else {
        format!("{} ok", least.name())
    };
    row
}

fn print(rows: &[Row], skipped: &[&str]) {
    eprintln!(
        "\n{:<22} {:<18} {:<20} {:<10} refused to",
        "mutation", "case", "allowed", "control"
    );
    for row in rows {
        eprintln!(
            "{:<22} {:<18} {:<20} {:<10} {}",
            row.mutation,
            row.case,
            row.allowed,
            row.control,
            row.refused.join(", ")
        );
    }
    eprintln!("not checked (anyone may call them): {}", skipped.join(", "));
}

#[tokio::test]
async fn every_mutation_is_refused_to_every_role_below_the_one_it_is_for() {
    let started = Instant::now();
    let schema = schema();
    let names: Vec<&str> = mutations(&schema).iter().map(|f| f.name.as_str()).collect();
    let wrong = unclassified(&names, CASES);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let stripe = FakeStripe::start(STRIPE_KEY).await;
    let stripe_base = stripe.base.clone();
    let t = TestApp::spawn_configured(move |c| {
        c.stripe_api_base = stripe_base;
        // Dozens of callers in a minute: a RATE_LIMITED answer would hide what the rule says.
        c.limits.rate_limits = false;
        // A tenant per case, all signed up from one address.
        c.sign_ups_per_address_hour = 1_000;
    })
    .await;
    let pg = t.pg().await;
    let watch = Watch {
        query: snapshot_query(&pg).await,
        pg,
        stripe: &stripe,
    };

    let (skipped, cases): (Vec<&Case>, Vec<&Case>) = CASES
        .iter()
        .partition(|case| matches!(case.allowed, Allowed::Anyone));
    // Side by side, as hashing the members' passwords is most of the time. The cases then run
    // one at a time, so that the requests the fake Stripe saw are the running case's.
    let prepared: Vec<Prepared> = futures_util::stream::iter(cases.iter().enumerate())
        .map(|(n, case)| prepare(&t, n, case))
        .buffered(4)
        .collect()
        .await;
    let set_up = started.elapsed();
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for (case, prepared) in cases.iter().zip(&prepared) {
        rows.push(check(&t, &watch, &schema, case, prepared, &mut problems).await);
    }
    let skipped: Vec<&str> = skipped.iter().map(|c| c.mutation).collect();
    print(&rows, &skipped);
    eprintln!(
        "took {:.1?} ({set_up:.1?} setting the tenants up)",
        started.elapsed()
    );

    let checked: BTreeSet<&str> = rows.iter().map(|r| r.mutation).collect();
    assert!(
        checked.len() >= MIN_CHECKED,
        "only {} mutations were checked: {checked:?}",
        checked.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// The classification check on lists of its own: a mutation the table lacks, and one the schema
/// lacks, are each named.
#[test]
fn a_mutation_missing_from_either_side_is_named() {
    let cases = [case("known", "", ADMIN, &[]), case("gone", "", OWNER, &[])];
    let wrong = unclassified(&["known", "added"], &cases);
    assert_eq!(wrong.len(), 2, "{wrong:?}");
    assert!(
        wrong[0].contains("Mutation.added is not classified"),
        "{wrong:?}"
    );
    assert!(wrong[1].contains("Mutation.gone"), "{wrong:?}");
    assert!(unclassified(&["known", "gone"], &cases).is_empty());
}
