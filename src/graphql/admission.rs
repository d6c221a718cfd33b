//! What a GraphQL request must be before anything recursive looks at it. async-graphql's parser,
//! its depth check and its validation rules all recurse over the document (and expand fragment
//! spreads without remembering them), so a deep or self-multiplying document would overflow a
//! worker's stack or run for minutes. Here it is measured without recursion first, parsed once,
//! and its fragments expanded once each; strings PostgreSQL cannot store are refused by name.

use std::collections::HashMap;

use async_graphql::parser::types::{
    Directive, ExecutableDocument, Selection, SelectionSet, VariableDefinition,
};
use async_graphql::parser::{Positioned, types::FragmentDefinition};
use async_graphql::{Name, Request, ServerError};
use async_graphql_value::{ConstValue, Value};

use crate::error::AppError;

/// Brackets (`{`, `[`, `(`) open at once at most: far beyond any real operation, far below
/// what overflows a stack.
pub const MAX_NESTING: usize = 64;
/// Fields of an operation once every fragment spread is replaced by its fragment.
pub const MAX_EXPANDED_FIELDS: usize = 10_000;

/// Checks `request` and leaves it parsed; an error is the whole answer.
pub fn admit(request: &mut Request) -> Result<(), ServerError> {
    nesting(&request.query)?;
    for (name, value) in request.variables.iter() {
        let mut path = format!("${name}");
        const_strings(value, &mut path)?;
    }
    let doc = request.parsed_query()?;
    fragments(doc)?;
    doc_strings(doc)?;
    Ok(())
}

fn error(err: AppError) -> ServerError {
    let mut server = ServerError::new(err.to_string(), None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", err.code());
    server.extensions = Some(ext);
    server
}

/// The deepest bracket nesting of the document's text, strings and comments skipped.
fn nesting(query: &str) -> Result<(), ServerError> {
    let bytes = query.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") {
                        4
                    } else {
                        1
                    };
                }
                i += 2;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(error(AppError::TooComplex(format!(
                        "the document nests more than {MAX_NESTING} levels of braces, brackets and parentheses"
                    ))));
                }
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// What one selection set comes to once expanded: its fields, saturating.
#[derive(Clone, Copy)]
enum Expansion {
    Visiting,
    Done(usize),
}

/// Refuses fragments that spread themselves (directly or not) and operations that expand
/// beyond [`MAX_EXPANDED_FIELDS`]; each fragment is expanded once, however often it is spread.
fn fragments(doc: &ExecutableDocument) -> Result<(), ServerError> {
    let mut seen: HashMap<&Name, Expansion> = HashMap::new();
    // Fragments first, each from a stack of its own (no recursion), so an operation's
    // expansion is a sum of known sizes.
    for name in doc.fragments.keys() {
        expand_fragment(doc, name, &mut seen)?;
    }
    for (_, op) in doc.operations.iter() {
        let fields = fields_in(&op.node.selection_set.node, &seen);
        if fields > MAX_EXPANDED_FIELDS {
            return Err(too_many_fields());
        }
    }
    Ok(())
}

fn too_many_fields() -> ServerError {
    error(AppError::TooComplex(format!(
        "the operation selects more than {MAX_EXPANDED_FIELDS} fields once its fragments are expanded"
    )))
}

fn expand_fragment<'d>(
    doc: &'d ExecutableDocument,
    root: &'d Name,
    seen: &mut HashMap<&'d Name, Expansion>,
) -> Result<(), ServerError> {
    if seen.contains_key(root) {
        return Ok(());
    }
    // Depth-first over fragment spreads with an explicit stack: a fragment is sized once all
    // the fragments it spreads are.
    let mut stack: Vec<&'d Name> = vec![root];
    seen.insert(root, Expansion::Visiting);
    while let Some(&name) = stack.last() {
        let Some(fragment) = doc.fragments.get(name) else {
            seen.insert(name, Expansion::Done(0));
            stack.pop();
            continue;
        };
        let mut pending = None;
        for spread in spreads(&fragment.node) {
            match seen.get(spread) {
                Some(Expansion::Done(_)) => {}
                Some(Expansion::Visiting) => {
                    return Err(error(AppError::bad_input(format!(
                        "fragment {spread} spreads itself (through {name}); fragments may not form cycles"
                    ))));
                }
                None => {
                    pending = Some(spread);
                    break;
                }
            }
        }
        match pending {
            Some(next) => {
                seen.insert(next, Expansion::Visiting);
                stack.push(next);
            }
            None => {
                let fields = fields_in(&fragment.node.selection_set.node, seen);
                if fields > MAX_EXPANDED_FIELDS {
                    return Err(too_many_fields());
                }
                seen.insert(name, Expansion::Done(fields));
                stack.pop();
            }
        }
    }
    Ok(())
}

/// Every selection set of a fragment, nested ones included, without recursion.
fn sets(root: &SelectionSet) -> Vec<&SelectionSet> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        for item in &out[i].items {
            match &item.node {
                Selection::Field(f) => out.push(&f.node.selection_set.node),
                Selection::InlineFragment(f) => out.push(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
        i += 1;
    }
    out
}

fn spreads(fragment: &FragmentDefinition) -> impl Iterator<Item = &Name> {
    sets(&fragment.selection_set.node)
        .into_iter()
        .flat_map(|set| set.items.iter())
        .filter_map(|item| match &item.node {
            Selection::FragmentSpread(s) => Some(&s.node.fragment_name.node),
            _ => None,
        })
}

/// Fields of a selection set with spreads counted as their (already sized) fragments.
fn fields_in(root: &SelectionSet, seen: &HashMap<&Name, Expansion>) -> usize {
    let mut total = 0usize;
    for set in sets(root) {
        for item in &set.items {
            total = total.saturating_add(match &item.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(_) => 0,
                Selection::FragmentSpread(s) => match seen.get(&s.node.fragment_name.node) {
                    Some(Expansion::Done(n)) => *n,
                    _ => 0,
                },
            });
        }
    }
    total
}

/// A string PostgreSQL refuses (it stores no NUL character), named by where it was given.
fn nul(path: &str) -> ServerError {
    error(crate::validate::nul_in(path))
}

fn const_strings(value: &ConstValue, path: &mut String) -> Result<(), ServerError> {
    match value {
        ConstValue::String(s) if s.contains('\0') => Err(nul(path)),
        ConstValue::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                const_strings(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        ConstValue::Object(fields) => {
            for (key, item) in fields {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                if key.contains('\0') {
                    return Err(nul(path));
                }
                const_strings(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn value_strings(value: &Value, path: &mut String) -> Result<(), ServerError> {
    match value {
        Value::String(s) if s.contains('\0') => Err(nul(path)),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                value_strings(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                let len = path.len();
                path.push('.');
                path.push_str(key);
                value_strings(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn arguments<'a>(
    owner: &str,
    args: impl IntoIterator<Item = (&'a Positioned<Name>, &'a Positioned<Value>)>,
) -> Result<(), ServerError> {
    for (name, value) in args {
        let mut path = format!("{owner}.{}", name.node);
        value_strings(&value.node, &mut path)?;
    }
    Ok(())
}

fn directives(list: &[Positioned<Directive>]) -> Result<(), ServerError> {
    for d in list {
        let owner = format!("@{}", d.node.name.node);
        arguments(&owner, d.node.arguments.iter().map(|(n, v)| (n, v)))?;
    }
    Ok(())
}

fn variable_defaults(defs: &[Positioned<VariableDefinition>]) -> Result<(), ServerError> {
    for def in defs {
        directives(&def.node.directives)?;
        if let Some(default) = &def.node.default_value {
            const_strings(&default.node, &mut format!("${}", def.node.name.node))?;
        }
    }
    Ok(())
}

/// Every literal string of the document: arguments (named by their field), directive
/// arguments and variables' defaults.
fn doc_strings(doc: &ExecutableDocument) -> Result<(), ServerError> {
    let mut roots: Vec<&SelectionSet> = Vec::new();
    for (_, op) in doc.operations.iter() {
        variable_defaults(&op.node.variable_definitions)?;
        directives(&op.node.directives)?;
        roots.push(&op.node.selection_set.node);
    }
    for fragment in doc.fragments.values() {
        directives(&fragment.node.directives)?;
        roots.push(&fragment.node.selection_set.node);
    }
    for set in roots.into_iter().flat_map(sets) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    directives(&f.node.directives)?;
                    let args = f.node.arguments.iter().map(|(n, v)| (n, v));
                    arguments(&f.node.name.node, args)?;
                }
                Selection::FragmentSpread(s) => directives(&s.node.directives)?,
                Selection::InlineFragment(f) => directives(&f.node.directives)?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(query: &str) -> Result<(), String> {
        admit(&mut Request::new(query)).map_err(|e| e.message)
    }

    #[test]
    fn nesting_counts_brackets_outside_strings_and_comments() {
        let deep = format!(
            "{{ me(x: {}1{}) {{ id }} }}",
            "[".repeat(70),
            "]".repeat(70)
        );
        assert!(admitted(&deep).unwrap_err().contains("nests more than"));
        let quoted = format!(
            "{{ me(x: \"{}\", y: \"\"\"{}\"\"\") {{ id }} }} # {}",
            "{".repeat(100),
            "[".repeat(100),
            "(".repeat(100)
        );
        assert_eq!(admitted(&quoted), Ok(()));
    }

    #[test]
    fn fragments_are_expanded_once_and_may_not_cycle() {
        // Each fragment doubles the one before: 2^40 fields if expanded naively.
        let mut doc = String::from("query { ...F0 }\n");
        for i in 0..40 {
            doc.push_str(&format!(
                "fragment F{i} on Query {{ ...F{} ...F{} }}\n",
                i + 1,
                i + 1
            ));
        }
        doc.push_str("fragment F40 on Query { me { id } }\n");
        assert!(admitted(&doc).unwrap_err().contains("more than"));
        let cycle = "query { ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A }";
        assert!(admitted(cycle).unwrap_err().contains("cycles"));
        let fine =
            "query { ...A ...A } fragment A on Query { me { ...B } } fragment B on User { id }";
        assert_eq!(admitted(fine), Ok(()));
    }

    #[test]
    fn nul_characters_are_named_where_they_were_given() {
        let literal = r#"{ analytics(filter: { properties: { plan: "a\u0000" } }) { x } }"#;
        assert_eq!(
            admitted(literal).unwrap_err(),
            "analytics.filter.properties.plan: contains a NUL character (\\u0000), which cannot be stored"
        );
        let mut request = Request::new(
            "mutation($events: [EventInput!]!) { ingestEvents(events: $events) { accepted } }",
        )
        .variables(async_graphql::Variables::from_json(serde_json::json!({
            "events": [{ "name": "a" }, { "name": "b", "properties": { "k\u{0}": 1 } }]
        })));
        let err = admit(&mut request).unwrap_err().message;
        assert!(err.starts_with("$events[1].properties.k"), "{err}");
    }
}
