//! Trusted documents: in allow-list mode (`FAHWA_TRUSTED_DOCUMENTS`) only registered
//! operations run. A request names one by the SHA-256 of its document
//! (`extensions.persistedQuery.sha256Hash`, as persisted-query clients send it) or sends the
//! document itself, whose hash must be registered; anything else is refused with `FORBIDDEN`
//! before it is parsed. `fahwa trust-documents --dir DIR` registers every operation of the
//! `.graphql` files there, each as a standalone document with the fragments it uses.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{DocumentOperations, ExecutableDocument};
use async_graphql::{ErrorExtensionValues, Request, ServerError};
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use scoped_futures::ScopedFutureExt;
use sha2::{Digest, Sha256};

use crate::db::{Db, Scope};
use crate::error::{AppError, AppResult};

/// How often a hash not in this instance's copy makes it read the list again.
const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

/// This instance's copy of the allow-list.
pub struct Trusted {
    db: Db,
    docs: RwLock<(HashMap<String, String>, Option<Instant>)>,
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    hash: String,
    #[diesel(sql_type = Text)]
    body: String,
}

fn refused(message: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", "FORBIDDEN");
    err.extensions = Some(ext);
    err
}

pub fn hash(document: &str) -> String {
    hex::encode(Sha256::digest(document.as_bytes()))
}

impl Trusted {
    pub fn new(db: Db) -> Trusted {
        Trusted {
            db,
            docs: RwLock::new((HashMap::new(), None)),
        }
    }

    fn known(&self, hash: &str) -> Option<String> {
        let docs = self.docs.read().unwrap_or_else(|e| e.into_inner());
        docs.0.get(hash).cloned()
    }

    async fn reload(&self) -> AppResult<()> {
        {
            let docs = self.docs.read().unwrap_or_else(|e| e.into_inner());
            if docs.1.is_some_and(|at| at.elapsed() < RELOAD_AT_MOST_EVERY) {
                return Ok(());
            }
        }
        let rows: Vec<Row> = self
            .db
            .scoped(Scope::Anonymous, |conn| {
                async move {
                    Ok(
                        diesel::sql_query("SELECT hash, body FROM trusted_documents")
                            .load(conn)
                            .await?,
                    )
                }
                .scope_boxed()
            })
            .await?;
        let mut docs = self.docs.write().unwrap_or_else(|e| e.into_inner());
        *docs = (
            rows.into_iter().map(|r| (r.hash, r.body)).collect(),
            Some(Instant::now()),
        );
        Ok(())
    }

    async fn lookup(&self, hash: &str) -> Option<String> {
        if let Some(body) = self.known(hash) {
            return Some(body);
        }
        if let Err(e) = self.reload().await {
            e.report("reading the trusted documents");
        }
        self.known(hash)
    }

    /// Lets a registered operation through (filling in the document when only its hash came);
    /// refuses every other.
    pub async fn admit(&self, request: &mut Request) -> Result<(), ServerError> {
        let named = request
            .extensions
            .get("persistedQuery")
            .and_then(|ext| ext.clone().into_json().ok())
            .and_then(|ext| ext["sha256Hash"].as_str().map(str::to_ascii_lowercase));
        let wanted = match (&named, request.query.is_empty()) {
            (Some(h), _) => h.clone(),
            (None, false) => hash(&request.query),
            (None, true) => return Err(refused("send a registered operation")),
        };
        let Some(body) = self.lookup(&wanted).await else {
            return Err(refused(
                "this deployment runs registered operations only, and this one is not",
            ));
        };
        if !request.query.is_empty() && request.query != body {
            return Err(refused(
                "the document is not the one registered under its hash",
            ));
        }
        request.query = body;
        Ok(())
    }
}

/// One registrable operation: its name and its standalone document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub name: String,
    pub body: String,
}

/// Every named operation of a `.graphql` source, each with the fragments it uses (in the
/// order they are written), as text cut from the source.
pub fn documents_of(source: &str) -> AppResult<Vec<Document>> {
    let doc: ExecutableDocument = async_graphql::parser::parse_query(source)
        .map_err(|e| AppError::bad_input(format!("not a GraphQL document: {e}")))?;
    // Where each line begins, in bytes: `\r\n` ends a line as `\n` does, and positions count
    // characters within their line.
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(source.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |pos: async_graphql::Pos| -> usize {
        let start = line_starts
            .get(pos.line.saturating_sub(1))
            .copied()
            .unwrap_or(source.len());
        source[start..]
            .char_indices()
            .nth(pos.column.saturating_sub(1))
            .map_or(source.len(), |(i, _)| start + i)
    };
    let mut starts: Vec<(usize, Option<String>, bool)> = Vec::new();
    if let DocumentOperations::Multiple(ops) = &doc.operations {
        for (name, op) in ops {
            starts.push((offset(op.pos), Some(name.to_string()), true));
        }
    }
    for (name, fragment) in &doc.fragments {
        starts.push((offset(fragment.pos), Some(name.to_string()), false));
    }
    starts.sort_by_key(|s| s.0);
    let text_of = |i: usize| -> String {
        let end = starts.get(i + 1).map_or(source.len(), |s| s.0);
        let text = &source[starts[i].0..end];
        // Comments between definitions belong to none of them.
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
            .trim()
            .to_string()
    };
    let fragments: Vec<(String, String)> = (0..starts.len())
        .filter(|i| !starts[*i].2)
        .map(|i| (starts[i].1.clone().unwrap_or_default(), text_of(i)))
        .collect();
    let mut out = Vec::new();
    for i in (0..starts.len()).filter(|i| starts[*i].2) {
        let mut body = text_of(i);
        let mut used = BTreeSet::new();
        loop {
            let before = used.len();
            for (name, text) in &fragments {
                if body.contains(&format!("...{name}")) && used.insert(name.clone()) {
                    body.push_str("\n\n");
                    body.push_str(text);
                }
            }
            if used.len() == before {
                break;
            }
        }
        out.push(Document {
            name: starts[i].1.clone().unwrap_or_default(),
            body,
        });
    }
    Ok(out)
}

/// Registers `docs` (again: a document already there keeps its row) as the database's owner
/// (the server's role only reads the list); returns how many were new.
pub async fn register(database_url: &str, docs: &[Document]) -> anyhow::Result<usize> {
    use diesel_async::AsyncConnection;
    let mut conn = diesel_async::AsyncPgConnection::establish(database_url).await?;
    let mut added = 0;
    for d in docs {
        added += diesel::sql_query(
            "INSERT INTO trusted_documents (hash, name, body) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind::<Text, _>(hash(&d.body))
        .bind::<Text, _>(&d.name)
        .bind::<Text, _>(&d.body)
        .execute(&mut conn)
        .await?;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_comes_with_the_fragments_it_uses() {
        let source = "# A comment.\nfragment A on T { x ...B }\n\nfragment B on T { y }\n\nfragment C on T { z }\n\nquery One { t { ...A } }\n\n# Two.\nmutation Two { m }\n";
        let docs = documents_of(source).unwrap();
        let names: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["One", "Two"]);
        assert_eq!(
            docs[0].body,
            "query One { t { ...A } }\n\nfragment A on T { x ...B }\n\nfragment B on T { y }"
        );
        assert_eq!(docs[1].body, "mutation Two { m }");
        assert!(documents_of("query {").is_err());
    }
}
