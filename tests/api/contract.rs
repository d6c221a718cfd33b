//! The client contract in ../shared/contract: every operation must validate against the schema
//! the code builds (tests here) and run (the other tests send them verbatim through `op`).

use std::collections::BTreeSet;
use std::path::PathBuf;

use apollo_compiler::ast::{Definition, Document};
use apollo_compiler::{ExecutableDocument, Schema};

/// Operations of contract files whose issues have not landed yet. Later work shrinks this list;
/// the test fails if one of them starts to validate, so it cannot go stale.
const EXPECTED_FAILURES: &[(&str, &str)] = &[];

fn contract_dir() -> PathBuf {
    std::env::var_os("FAHWA_CONTRACT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/contract"))
}

fn files() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(contract_dir())
        .expect("the contract lives in ../shared/contract")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// One operation with the fragments it uses (transitively), as a standalone document.
pub fn operation(file: &str, name: &str) -> String {
    let source = std::fs::read_to_string(contract_dir().join(file)).unwrap();
    let doc = Document::parse(&source, file).expect("contract file parses");
    let op = doc
        .definitions
        .iter()
        .find_map(|d| match d {
            Definition::OperationDefinition(op) if op.name.as_deref() == Some(name) => {
                Some(op.to_string())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no operation {name} in {file}"));
    let fragments: Vec<(String, String)> = doc
        .definitions
        .iter()
        .filter_map(|d| match d {
            Definition::FragmentDefinition(f) => Some((f.name.to_string(), f.to_string())),
            _ => None,
        })
        .collect();
    let mut text = op;
    let mut used = BTreeSet::new();
    loop {
        let before = used.len();
        for (fname, ftext) in &fragments {
            if text.contains(&format!("...{fname}")) && used.insert(fname.clone()) {
                text.push('\n');
                text.push_str(ftext);
            }
        }
        if used.len() == before {
            return text;
        }
    }
}

#[test]
fn every_contract_operation_validates_against_the_schema() {
    let sdl =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.graphql"))
            .unwrap();
    let schema =
        Schema::parse_and_validate(&sdl, "schema.graphql").expect("schema.graphql is valid");
    let mut unexpected = Vec::new();
    let mut now_passing = Vec::new();
    let mut seen = 0;
    for (file, source) in files() {
        let doc = Document::parse(&source, &file).expect("contract file parses");
        for def in &doc.definitions {
            let Definition::OperationDefinition(op) = def else {
                continue;
            };
            let name = op
                .name
                .as_ref()
                .expect("contract operations are named")
                .to_string();
            seen += 1;
            let text = operation(&file, &name);
            let result = ExecutableDocument::parse_and_validate(&schema, &text, "op.graphql");
            let expected_to_fail = EXPECTED_FAILURES.contains(&(file.as_str(), name.as_str()));
            match (result, expected_to_fail) {
                (Ok(_), true) => now_passing.push(format!("{file}:{name}")),
                (Err(e), false) => unexpected.push(format!("{file}:{name}: {e}")),
                _ => {}
            }
        }
    }
    assert!(seen >= 30, "found only {seen} contract operations");
    assert!(
        unexpected.is_empty(),
        "contract operations fail:\n{}",
        unexpected.join("\n")
    );
    assert!(
        now_passing.is_empty(),
        "these now validate; remove them from EXPECTED_FAILURES: {now_passing:?}"
    );
}

#[test]
fn schema_file_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    let built = fahwa::graphql::sdl();
    assert!(
        on_disk == built,
        "schema.graphql differs from the schema the code builds; refresh it with\n  cargo run -- print-schema > schema.graphql"
    );
}
