//! Broken object level authorization (OWASP API1:2023): no field or argument that takes an ID
//! may reach another tenant's object. The fields are found by walking the schema the code
//! builds, so a field added later is attacked here without editing this file.
//!
//! For each ID position of each root field, tenant `acme`'s OWNER sends a document with one of
//! tenant `globex`'s IDs in that position, and the same document with a random UUID. The two
//! answers must be the same once the IDs are blanked out (same data, codes, messages and
//! paths), hold no data for the field and nothing of globex's; globex's members, keys, reports
//! and integrations must be as they were afterwards.
//!
//! An equal answer proves nothing if the document fails before the ID is looked at (a bad
//! cron, a missing argument). So each document is first sent by a tenant of its own with that
//! tenant's own IDs, and must succeed there: the control.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use apollo_compiler::Schema;
use apollo_compiler::ast::{FieldDefinition, OperationType, Type};
use apollo_compiler::schema::ExtendedType;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::fake_stripe::FakeStripe;
use crate::harness::{Session, TestApp, codes};
use crate::probes::{self, MAX_INPUT_DEPTH, is_required, schema};

const STRIPE_KEY: &str = "sk_test_security_ids";
/// The victim's slug: every text of theirs that a member chose contains it.
const VICTIM: &str = "globex";
/// What an answer may say when the ID is not the caller's to use.
const REFUSALS: [&str; 3] = ["NOT_FOUND", "FORBIDDEN", "BAD_USER_INPUT"];

/// Where an ID goes in a field's arguments: the argument's name, then input fields' names (a
/// list is entered through its single element).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    path: Vec<String>,
    /// Whether a valid call must fill it (every step on the way is non-null without default).
    required: bool,
}

impl Slot {
    fn label(&self) -> String {
        self.path.join(".")
    }
}

/// A root field with at least one ID position.
struct IdField<'s> {
    root: OperationType,
    def: &'s FieldDefinition,
    slots: Vec<Slot>,
}

impl IdField<'_> {
    fn name(&self) -> &str {
        self.def.name.as_str()
    }

    fn label(&self) -> String {
        let root = match self.root {
            OperationType::Query => "Query",
            OperationType::Mutation => "Mutation",
            OperationType::Subscription => "Subscription",
        };
        format!("{root}.{}", self.def.name)
    }
}

/// Every ID position of queries and mutations. Subscriptions are left out: they run over
/// WebSocket only (`report_runs.rs` subscribes to another tenant's run with
/// `reportRunUpdated`).
fn id_taking_fields(schema: &Schema) -> Vec<IdField<'_>> {
    let mut found = Vec::new();
    for root in [OperationType::Query, OperationType::Mutation] {
        let Some(object) = schema
            .root_operation(root)
            .and_then(|name| schema.get_object(name))
        else {
            continue;
        };
        for def in object.fields.values() {
            let mut slots = Vec::new();
            for arg in &def.arguments {
                let path = vec![arg.name.to_string()];
                id_slots(schema, &arg.ty, path, is_required(arg), 0, &mut slots);
            }
            if !slots.is_empty() {
                found.push(IdField { root, def, slots });
            }
        }
    }
    found
}

fn id_slots(
    schema: &Schema,
    ty: &Type,
    path: Vec<String>,
    required: bool,
    depth: usize,
    out: &mut Vec<Slot>,
) {
    let name = ty.inner_named_type();
    if name == "ID" {
        out.push(Slot { path, required });
        return;
    }
    let Some(input) = schema.get_input_object(name) else {
        return;
    };
    if depth >= MAX_INPUT_DEPTH {
        return;
    }
    for (field_name, field) in &input.fields {
        let mut inner = path.clone();
        inner.push(field_name.to_string());
        let required = required && is_required(field);
        id_slots(schema, &field.ty, inner, required, depth + 1, out);
    }
}

/// The object types reachable from queries and mutations whose values carry an `id: ID`: the
/// kinds of object the victim must own for the attack to try each.
fn kinds_with_ids(schema: &Schema) -> BTreeSet<String> {
    let mut stack: Vec<String> = [OperationType::Query, OperationType::Mutation]
        .into_iter()
        .filter_map(|root| schema.root_operation(root).map(|n| n.to_string()))
        .collect();
    let mut seen = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let fields = match schema.types.get(name.as_str()) {
            Some(ExtendedType::Object(o)) => &o.fields,
            Some(ExtendedType::Interface(i)) => &i.fields,
            Some(ExtendedType::Union(u)) => {
                stack.extend(u.members.iter().map(|m| m.to_string()));
                continue;
            }
            _ => continue,
        };
        if fields
            .get("id")
            .is_some_and(|id| id.ty.inner_named_type() == "ID")
        {
            kinds.insert(name.clone());
        }
        stack.extend(fields.values().map(|f| f.ty.inner_named_type().to_string()));
    }
    for root in [OperationType::Query, OperationType::Mutation] {
        if let Some(name) = schema.root_operation(root) {
            kinds.remove(name.as_str());
        }
    }
    kinds
}

/// IDs by slot path; every other argument gets the smallest valid value of its type.
type Assignment = Vec<(Vec<String>, String)>;

/// The document calling `field` with `ids` in their slots, and its variables.
fn document(schema: &Schema, field: &IdField<'_>, ids: &Assignment) -> (String, Value) {
    let keyword = match field.root {
        OperationType::Query => "query",
        _ => "mutation",
    };
    let given: Vec<(Vec<String>, Value)> = ids
        .iter()
        .map(|(path, id)| (path.clone(), json!(id)))
        .collect();
    probes::document(schema, keyword, "Probe", field.def, &given)
}

/// One of a tenant's objects, with the GraphQL type it is an ID of.
#[derive(Debug, Clone)]
struct Owned {
    kind: &'static str,
    id: String,
}

struct Tenant {
    owner: Session,
    /// Made in the same order for every tenant, so that a position names the same kind of
    /// object in each.
    objects: Vec<Owned>,
}

/// The ID at `pointer` (a JSON pointer into `data`), or why there is none.
fn created(r: &Value, pointer: &str) -> String {
    r["data"]
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no ID at {pointer}: {r}"))
        .to_string()
}

/// A tenant with one object of every kind that has an ID, made through the contract.
async fn populate(t: &TestApp, slug: &str) -> Tenant {
    let owner = t.sign_up(slug).await;
    let admin = t.member(&owner, slug, "ADMIN").await;
    let viewer = t.member(&owner, slug, "VIEWER").await;
    let token = Some(owner.access.as_str());
    let key = t
        .op(
            token,
            "tenant.graphql",
            "CreateApiKey",
            json!({ "input": { "name": format!("{slug} key"), "scopes": ["READ"] } }),
        )
        .await;
    let report = t
        .op(
            token,
            "reports.graphql",
            "CreateReport",
            json!({ "input": {
                "name": format!("{slug} report"),
                "description": format!("{slug} plans"),
                "widgets": [{
                    "title": format!("{slug} widget"),
                    "metric": "EVENTS",
                    "granularity": "DAY",
                    "range": "LAST_7_DAYS",
                }],
            }}),
        )
        .await;
    let report_id = created(&report, "/createReport/id");
    let run = t
        .op(
            token,
            "reports.graphql",
            "RunReport",
            json!({ "id": report_id, "format": "CSV" }),
        )
        .await;
    let integration = t
        .op(
            token,
            "integrations.graphql",
            "ConnectIntegration",
            json!({ "input": {
                "provider": "STRIPE",
                "credentials": { "apiKey": STRIPE_KEY },
                "webhookSecret": format!("whsec_{slug}"),
            }}),
        )
        .await;
    let audit = t
        .op(token, "tenant.graphql", "AuditLog", json!({ "first": 1 }))
        .await;
    let objects = vec![
        ("Tenant", owner.tenant_id.clone()),
        ("User", owner.user_id.clone()),
        ("User", admin.user_id.clone()),
        ("User", viewer.user_id.clone()),
        ("ApiKey", created(&key, "/createApiKey/apiKey/id")),
        ("Report", report_id),
        ("Widget", created(&report, "/createReport/widgets/0/id")),
        ("ReportRun", created(&run, "/runReport/id")),
        (
            "Integration",
            created(&integration, "/connectIntegration/id"),
        ),
        ("AuditEntry", created(&audit, "/auditLog/edges/0/node/id")),
    ];
    Tenant {
        owner,
        objects: objects
            .into_iter()
            .map(|(kind, id)| Owned { kind, id })
            .collect(),
    }
}

/// Everything the victim can see of their members, keys, reports and integrations.
async fn state(t: &TestApp, s: &Session) -> Vec<Value> {
    let token = Some(s.access.as_str());
    let mut members = t
        .op(token, "tenant.graphql", "Members", json!({ "first": 100 }))
        .await;
    // Moves whenever the victim's own requests are seen, which this test does not judge.
    for edge in members["data"]["tenant"]["members"]["edges"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if let Some(node) = edge["node"].as_object_mut() {
            node.remove("lastActiveAt");
        }
    }
    let others = [
        ("tenant.graphql", "Team", json!({})),
        ("tenant.graphql", "ApiKeys", json!({})),
        ("reports.graphql", "Reports", json!({ "first": 100 })),
        ("integrations.graphql", "Integrations", json!({})),
    ];
    let mut all = vec![members];
    for (file, name, vars) in others {
        all.push(t.op(token, file, name, vars).await);
    }
    for answer in &all {
        assert!(answer["errors"].is_null(), "{answer}");
    }
    all
}

async fn send(
    t: &TestApp,
    s: &Session,
    schema: &Schema,
    f: &IdField<'_>,
    ids: &Assignment,
) -> Value {
    let (doc, variables) = document(schema, f, ids);
    t.gql(Some(&s.access), &doc, variables).await
}

fn succeeded(answer: &Value, field: &str) -> bool {
    answer["errors"].is_null() && !answer["data"][field].is_null()
}

/// What the attack puts in the slots the target does not fill: the position, in the
/// attacker's own objects, of what made the control succeed there.
struct Home {
    target_kind: &'static str,
    others: Vec<(Vec<String>, usize)>,
}

/// Sends the document as a fresh tenant of its own with its own IDs, until one combination
/// succeeds: proof that the document reaches the point where its IDs are looked up.
async fn control(
    t: &TestApp,
    schema: &Schema,
    field: &IdField<'_>,
    target: &Slot,
    n: usize,
) -> Result<Home, String> {
    let own = populate(t, &format!("control-{n}")).await;
    let slots: Vec<&Slot> = std::iter::once(target)
        .chain(
            field
                .slots
                .iter()
                .filter(|s| s.required && s.path != target.path),
        )
        .collect();
    let count = own.objects.len();
    let combinations = u32::try_from(slots.len())
        .ok()
        .and_then(|k| count.checked_pow(k))
        .filter(|&c| c <= 2_000)
        .ok_or_else(|| format!("too many ID slots to search: {}", slots.len()))?;
    let mut last = Value::Null;
    for combination in 0..combinations {
        let picks: Vec<usize> = (0..slots.len())
            .map(|i| combination / count.pow(i as u32) % count)
            .collect();
        let ids: Assignment = slots
            .iter()
            .zip(&picks)
            .map(|(s, &i)| (s.path.clone(), own.objects[i].id.clone()))
            .collect();
        let answer = send(t, &own.owner, schema, field, &ids).await;
        if succeeded(&answer, field.name()) {
            return Ok(Home {
                target_kind: own.objects[picks[0]].kind,
                others: slots[1..]
                    .iter()
                    .zip(&picks[1..])
                    .map(|(s, &i)| (s.path.clone(), i))
                    .collect(),
            });
        }
        last = answer;
    }
    let (doc, variables) = document(schema, field, &Vec::new());
    Err(format!(
        "{} with {}: no ID of the tenant's own makes it succeed, so an attack through it \
         proves nothing (teach `sample` a valid value?)\n  {doc}\n  {variables}\n  last answer: {last}",
        field.label(),
        target.label()
    ))
}

/// What is wrong with the answer for the victim's `id` (in `missing`, the same document with
/// a random ID `random`).
fn judge(
    field: &str,
    victims: &[Owned],
    id: &str,
    answer: &Value,
    random: &str,
    missing: &Value,
) -> Vec<String> {
    let mut wrong = Vec::new();
    let text = answer.to_string();
    if text.replace(id, "<ID>") != missing.to_string().replace(random, "<ID>") {
        wrong.push(format!(
            "tells the row from a missing one:\n    theirs:  {answer}\n    missing: {missing}"
        ));
    }
    if !answer["data"][field].is_null() {
        wrong.push(format!("answers with data: {answer}"));
    }
    let got = codes(answer);
    if got.is_empty() || got.iter().any(|c| !REFUSALS.contains(&c.as_str())) {
        wrong.push(format!("answers with codes {got:?}: {answer}"));
    }
    // The ID sent may come back in a message (as the random one does), nothing else of theirs.
    let others: Vec<&str> = victims
        .iter()
        .map(|o| o.id.as_str())
        .filter(|other| *other != id && text.contains(*other))
        .collect();
    if !others.is_empty() || text.to_lowercase().contains(VICTIM) {
        wrong.push(format!("shows the victim's data: {answer}"));
    }
    wrong
}

/// One line of the printed table: a slot, and the codes the victim's IDs got there.
struct Row {
    field: String,
    slot: String,
    control: String,
    codes: BTreeMap<String, BTreeSet<&'static str>>,
}

fn print(rows: &[Row]) {
    eprintln!(
        "\n{:<30} {:<30} {:<22} codes for the victim's IDs (their kinds)",
        "field", "ID slot", "control (own ID)"
    );
    for row in rows {
        let codes: Vec<String> = row
            .codes
            .iter()
            .map(|(code, kinds)| {
                let kinds: Vec<&str> = kinds.iter().copied().collect();
                format!("{code} ({})", kinds.join(", "))
            })
            .collect();
        eprintln!(
            "{:<30} {:<30} {:<22} {}",
            row.field,
            row.slot,
            row.control,
            codes.join("; ")
        );
    }
}

#[tokio::test]
async fn every_id_argument_in_the_schema_treats_another_tenants_ids_as_missing() {
    let started = Instant::now();
    let schema = schema();
    let fields = id_taking_fields(&schema);
    let covered: Vec<String> = fields
        .iter()
        .map(|f| {
            let slots: Vec<String> = f.slots.iter().map(Slot::label).collect();
            format!("{}({})", f.label(), slots.join(", "))
        })
        .collect();
    eprintln!("ID-taking fields:\n  {}", covered.join("\n  "));
    assert!(
        fields.len() >= 8,
        "the schema walk found only {} fields that take an ID: {covered:?}",
        fields.len()
    );

    let stripe = FakeStripe::start(STRIPE_KEY).await;
    let stripe_base = stripe.base.clone();
    let t = TestApp::spawn_configured(move |c| {
        c.stripe_api_base = stripe_base;
        // Hundreds of attempts in a minute: a RATE_LIMITED answer would tell nothing apart.
        c.limits.rate_limits = false;
    })
    .await;
    let attacker = populate(&t, "acme").await;
    let victim = populate(&t, VICTIM).await;
    let owned: BTreeSet<&str> = victim.objects.iter().map(|o| o.kind).collect();
    let unowned: Vec<String> = kinds_with_ids(&schema)
        .into_iter()
        .filter(|k| !owned.contains(k.as_str()))
        .collect();
    assert!(
        unowned.is_empty(),
        "the victim owns nothing of {unowned:?}, so their IDs are never tried: make one in `populate`"
    );
    let before = state(&t, &victim.owner).await;

    let mut problems = Vec::new();
    let mut rows = Vec::new();
    let targets = fields
        .iter()
        .flat_map(|f| f.slots.iter().map(move |s| (f, s)));
    for (n, (field, slot)) in targets.enumerate() {
        let home = match control(&t, &schema, field, slot, n).await {
            Ok(home) => home,
            Err(why) => {
                problems.push(why);
                continue;
            }
        };
        let mut row = Row {
            field: field.label(),
            slot: slot.label(),
            control: format!("ok ({})", home.target_kind),
            codes: BTreeMap::new(),
        };
        for theirs in &victim.objects {
            let with = |id: &str| -> Assignment {
                std::iter::once((slot.path.clone(), id.to_string()))
                    .chain(
                        home.others
                            .iter()
                            .map(|(p, i)| (p.clone(), attacker.objects[*i].id.clone())),
                    )
                    .collect()
            };
            let answer = send(&t, &attacker.owner, &schema, field, &with(&theirs.id)).await;
            let random = Uuid::new_v4().to_string();
            let missing = send(&t, &attacker.owner, &schema, field, &with(&random)).await;
            for wrong in judge(
                field.name(),
                &victim.objects,
                &theirs.id,
                &answer,
                &random,
                &missing,
            ) {
                let (doc, variables) = document(&schema, field, &with(&theirs.id));
                problems.push(format!(
                    "{} with the victim's {} in {}: {wrong}\n    request: {doc} {variables}",
                    field.label(),
                    theirs.kind,
                    slot.label()
                ));
            }
            row.codes
                .entry(codes(&answer).join("+"))
                .or_default()
                .insert(theirs.kind);
        }
        rows.push(row);
    }
    print(&rows);

    let after = state(&t, &victim.owner).await;
    if before != after {
        problems.push(format!(
            "the victim's tenant changed:\n    before: {before:?}\n    after:  {after:?}"
        ));
    }
    eprintln!("took {:.1?}", started.elapsed());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// The walk on a schema of its own: IDs in arguments, in nested and listed input objects, and
/// in input objects that refer to themselves.
#[test]
fn the_schema_walk_finds_ids_nested_in_input_objects() {
    let sdl = r#"
        type Query { thing(id: ID!): Thing  things(filter: Filter): [Thing!]!  plain(n: Int): Int }
        type Mutation { make(input: [MakeInput!]!): Thing! }
        type Thing { id: ID! }
        input Filter { ownerId: ID  tree: Tree }
        input Tree { nodeId: ID!  children: [Tree!] }
        input MakeInput { name: String!  parent: Parent! }
        input Parent { id: ID!  ids: [ID!] }
    "#;
    let schema = Schema::parse_and_validate(sdl, "test.graphql")
        .unwrap()
        .into_inner();
    let found: Vec<(String, Vec<(String, bool)>)> = id_taking_fields(&schema)
        .iter()
        .map(|f| {
            let slots = f.slots.iter().map(|s| (s.label(), s.required)).collect();
            (f.label(), slots)
        })
        .collect();
    let tree: Vec<(String, bool)> = (0..MAX_INPUT_DEPTH - 1)
        .map(|depth| {
            let children = ".children".repeat(depth);
            (format!("filter.tree{children}.nodeId"), false)
        })
        .collect();
    let mut things = vec![("filter.ownerId".to_string(), false)];
    things.extend(tree);
    assert_eq!(
        found,
        [
            ("Query.thing".to_string(), vec![("id".to_string(), true)]),
            ("Query.things".to_string(), things),
            (
                "Mutation.make".to_string(),
                vec![
                    ("input.parent.id".to_string(), true),
                    ("input.parent.ids".to_string(), false),
                ]
            ),
        ]
    );
    assert_eq!(
        kinds_with_ids(&schema),
        BTreeSet::from(["Thing".to_string()])
    );
    let make = &id_taking_fields(&schema)[2];
    let ids = vec![(
        vec!["input".into(), "parent".into(), "ids".into()],
        "X".into(),
    )];
    let (doc, variables) = document(&schema, make, &ids);
    assert_eq!(
        doc,
        "mutation Probe($input: [MakeInput!]!) { make(input: $input) { __typename } }"
    );
    let id = variables["input"][0]["parent"]["id"].as_str().unwrap();
    assert!(Uuid::parse_str(id).is_ok(), "{variables}");
    assert_eq!(
        variables,
        json!({ "input": [{ "name": "probe", "parent": { "id": id, "ids": ["X"] } }] })
    );
}

/// The judge on answers made up for it: each way of telling a row from a missing one is caught,
/// and a message that only repeats the ID sent is not.
#[test]
fn the_judge_catches_each_way_of_telling_a_row_apart() {
    let victims = [
        Owned {
            kind: "Report",
            id: "r-1".into(),
        },
        Owned {
            kind: "User",
            id: "u-1".into(),
        },
    ];
    let refusal = |code: &str, message: &str| {
        json!({
            "data": null,
            "errors": [{ "message": message, "path": ["report"], "extensions": { "code": code } }],
        })
    };
    let missing = refusal("NOT_FOUND", "no report x-9");
    let verdict = |answer: &Value| judge("report", &victims, "r-1", answer, "x-9", &missing);

    assert!(verdict(&refusal("NOT_FOUND", "no report r-1")).is_empty());
    for tells in [
        refusal("FORBIDDEN", "no report r-1"),
        refusal("NOT_FOUND", "report r-1 is another tenant's"),
        json!({ "data": { "report": { "__typename": "Report" } } }),
        refusal("NOT_FOUND", "no report r-1, owned by u-1"),
        refusal("NOT_FOUND", "no report r-1 in Globex"),
    ] {
        assert!(!verdict(&tells).is_empty(), "not caught: {tells}");
    }
    // Equal answers are not enough: both must refuse.
    let internal = refusal("INTERNAL", "internal error");
    let both = judge("report", &victims, "r-1", &internal, "x-9", &internal);
    assert_eq!(both.len(), 1, "{both:?}");
}
