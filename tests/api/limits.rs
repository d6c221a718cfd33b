//! Depth, complexity and alias limits answer QUERY_TOO_COMPLEX before anything runs.

use serde_json::json;

use crate::harness::{TestApp, codes};

#[tokio::test]
async fn deep_costly_and_aliased_queries_are_refused() {
    let t = TestApp::spawn().await;
    let s = t.sign_up("acme").await;

    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("tenant {{ members(first: 1) {{ edges {{ node {{ {deep} }} }} }} }}");
    }
    let deep = format!("{{ me {{ {deep} }} }}");
    let resp = t.gql(Some(&s.access), &deep, json!({})).await;
    assert_eq!(codes(&resp), ["QUERY_TOO_COMPLEX"], "{resp}");

    let costly = "{ tenant { members(first: 100) { edges { node { tenant { members(first: 100) { edges { node { id name email } } } } } } } } }";
    let resp = t.gql(Some(&s.access), costly, json!({})).await;
    assert_eq!(codes(&resp), ["QUERY_TOO_COMPLEX"], "{resp}");

    let aliases: String = (0..40).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let resp = t
        .gql(Some(&s.access), &format!("{{ {aliases} }}"), json!({}))
        .await;
    assert_eq!(codes(&resp), ["QUERY_TOO_COMPLEX"], "{resp}");
    assert!(
        resp["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases")
    );

    // Just inside the limits still runs.
    let fine: String = (0..5).map(|i| format!("a{i}: me {{ id }} ")).collect();
    let resp = t
        .gql(Some(&s.access), &format!("{{ {fine} }}"), json!({}))
        .await;
    assert!(resp["errors"].is_null(), "{resp}");
}

/// What GraphiQL (graphql-js 16's `getIntrospectionQuery`) sends to draw its docs.
const INTROSPECTION: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }
}
"#;

#[tokio::test]
async fn the_playground_can_introspect_the_schema() {
    let t = TestApp::spawn().await;
    let resp = t.gql(None, INTROSPECTION, json!({})).await;
    assert!(resp["errors"].is_null(), "{resp}");
    let types = resp["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|ty| ty["name"] == "Tenant"));
}
