//! Documents that call one root field of the schema the code builds, with the smallest valid
//! arguments its types allow and chosen values at chosen paths: what the suites that walk the
//! schema (`security_ids.rs`, `role_escalation.rs`) send, so that a field added later is
//! attacked without editing them.

use apollo_compiler::Schema;
use apollo_compiler::ast::{FieldDefinition, InputValueDefinition, Type};
use apollo_compiler::schema::ExtendedType;
use chrono::{Duration, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::harness::PASSWORD;

/// How deep input objects are followed: they may refer to themselves.
pub const MAX_INPUT_DEPTH: usize = 6;

/// Values to place at argument paths (`["input", "schedule", "recipientIds"]`).
pub type Given = [(Vec<String>, Value)];

pub fn schema() -> Schema {
    Schema::parse_and_validate(fahwa::graphql::sdl(), "schema.graphql")
        .expect("the schema the code builds is valid")
        .into_inner()
}

pub fn is_required(def: &InputValueDefinition) -> bool {
    def.ty.is_non_null() && def.default_value.is_none()
}

/// `keyword name(...) { field(...) { __typename } }` with its required arguments and those
/// `given` reaches, and the variables. Only `__typename` is selected: a guarded field of the
/// result must not stand in for the field's own answer.
pub fn document(
    schema: &Schema,
    keyword: &str,
    name: &str,
    field: &FieldDefinition,
    given: &Given,
) -> (String, Value) {
    let mut declared = Vec::new();
    let mut passed = Vec::new();
    let mut values = Map::new();
    for arg in &field.arguments {
        let path = vec![arg.name.to_string()];
        if !is_required(arg) && !given.iter().any(|(p, _)| p.starts_with(&path)) {
            continue;
        }
        declared.push(format!("${}: {}", arg.name, arg.ty));
        passed.push(format!("{0}: ${0}", arg.name));
        values.insert(arg.name.to_string(), fill(schema, &arg.ty, &path, given, 0));
    }
    let wrap = |items: &[String]| {
        if items.is_empty() {
            String::new()
        } else {
            format!("({})", items.join(", "))
        }
    };
    let composite = matches!(
        schema.types.get(field.ty.inner_named_type()),
        Some(ExtendedType::Object(_) | ExtendedType::Interface(_) | ExtendedType::Union(_))
    );
    let doc = format!(
        "{keyword} {name}{} {{ {}{}{} }}",
        wrap(&declared),
        field.name,
        wrap(&passed),
        if composite { " { __typename }" } else { "" },
    );
    (doc, Value::Object(values))
}

/// The value given at `path` (one item given for a list becomes a list of it), or the smallest
/// valid value of `ty` (required input fields, plus those on the way to a given value; lists of
/// one element).
pub fn fill(schema: &Schema, ty: &Type, path: &[String], given: &Given, depth: usize) -> Value {
    if let Some((_, value)) = given.iter().find(|(p, _)| p == path) {
        return match value {
            Value::Array(_) => value.clone(),
            item if ty.is_list() => json!([item]),
            item => item.clone(),
        };
    }
    if ty.is_list() {
        return json!([fill(schema, ty.item_type(), path, given, depth)]);
    }
    let name = ty.inner_named_type();
    if let Some(input) = schema.get_input_object(name) {
        assert!(
            depth < MAX_INPUT_DEPTH,
            "input objects nested too deep at {path:?}"
        );
        let mut object = Map::new();
        for (field_name, field) in &input.fields {
            let mut inner = path.to_vec();
            inner.push(field_name.to_string());
            if is_required(field) || given.iter().any(|(p, _)| p.starts_with(&inner)) {
                let value = fill(schema, &field.ty, &inner, given, depth + 1);
                object.insert(field_name.to_string(), value);
            }
        }
        return Value::Object(object);
    }
    if let Some(enumeration) = schema.get_enum(name) {
        let first = enumeration
            .values
            .keys()
            .next()
            .expect("an enum has values");
        return json!(first.as_str());
    }
    sample(name.as_str(), path.last().map_or("", String::as_str))
}

/// A valid value of a scalar. Some strings have rules of their own, known by their name.
fn sample(scalar: &str, name: &str) -> Value {
    match (scalar, name) {
        ("String", "cron") => json!("0 8 * * MON"),
        ("String", "email") => json!("probe@probe.example.com"),
        ("String", "password") => json!(PASSWORD),
        ("String", _) => json!("probe"),
        ("ID", _) => json!(Uuid::new_v4().to_string()),
        ("Int", _) => json!(1),
        ("Float", _) => json!(1.0),
        ("Boolean", _) => json!(false),
        ("DateTime", _) => json!((Utc::now() - Duration::hours(1)).to_rfc3339()),
        ("NaiveDate", _) => json!(Utc::now().date_naive().to_string()),
        ("Decimal", _) => json!("1.00"),
        ("JSON", _) => json!({}),
        (other, _) => panic!("no sample value for the scalar {other}: add one to `sample`"),
    }
}
