//! The one place where errors get the contract's `extensions.code`, and where the alias limit
//! (which async-graphql lacks) is enforced.

use std::sync::Arc;

use std::sync::Mutex;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextResolve, NextSubscribe, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{
    ErrorExtensionValues, Request, Response, ServerError, ServerResult, Value, Variables,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::error::AppError;

pub struct ErrorCodes {
    pub max_aliases: usize,
}

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodesExtension {
            max_aliases: self.max_aliases,
            nulled: Arc::default(),
        })
    }
}

/// Created per request.
struct ErrorCodesExtension {
    max_aliases: usize,
    /// Errors of nullable fields that were answered with `null`; shared with a subscription's
    /// stream, whose answers take theirs as each is made.
    nulled: Arc<Mutex<Vec<ServerError>>>,
}

#[async_trait::async_trait]
impl Extension for ErrorCodesExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let nulled = std::mem::take(&mut *self.nulled.lock().unwrap_or_else(|e| e.into_inner()));
        response.errors.extend(nulled);
        for err in &mut response.errors {
            assign_code(err);
        }
        response
    }

    /// Every transport (a batch's operations and WebSocket subscriptions too) passes here
    /// before async-graphql parses or validates anything.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        super::admission::admit(&mut request)?;
        next.run(ctx, request).await
    }

    /// Subscription answers do not pass through `request`.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let nulled = self.nulled.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                let mut nulled = nulled.lock().unwrap_or_else(|e| e.into_inner());
                response.errors.extend(nulled.drain(..));
                drop(nulled);
                for err in &mut response.errors {
                    assign_code(err);
                }
                response
            })
            .boxed()
    }

    /// async-graphql leaves a failed field out of its object; GraphQL (and our contract) wants
    /// a nullable field that fails to be `null`, with its error beside the data.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let nullable = !info.return_type.ends_with('!');
        match next.run(ctx, info).await {
            Err(err) if nullable => {
                self.nulled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(err);
                Ok(Some(Value::Null))
            }
            other => other,
        }
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let aliases = count_aliases(&doc);
        if aliases > self.max_aliases {
            return Err(coded(
                format!(
                    "the query uses {aliases} aliases; at most {} are allowed",
                    self.max_aliases
                ),
                "QUERY_TOO_COMPLEX",
            ));
        }
        Ok(doc)
    }
}

fn coded(message: String, code: &str) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    err.extensions = Some(ext);
    err
}

fn has_code(err: &ServerError) -> bool {
    err.extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some())
}

/// Gives `err` its code: from the `AppError` behind it, from async-graphql's own limit and
/// validation messages, or `INTERNAL` (with the detail logged, not shown) for anything else.
pub fn assign_code(err: &mut ServerError) {
    if has_code(err) {
        return;
    }
    let app_error = err
        .source::<AppError>()
        .or_else(|| err.source::<Arc<AppError>>().map(|a| &**a));
    let (code, retry_after) = match app_error {
        Some(app) => {
            app.report(&format!("GraphQL at {:?}", err.path));
            (app.code(), app.retry_after_secs())
        }
        None if err.source.is_some() => {
            metrics::counter!("fahwa_internal_errors_total").increment(1);
            tracing::error!(message = %err.message, path = ?err.path, "unclassified resolver error");
            err.message = "internal error".into();
            ("INTERNAL", None)
        }
        None => {
            let limit = [
                "Query is too complex",
                "Query is nested too deep",
                "recursion depth",
                "recursion limit exceeded",
            ]
            .iter()
            .any(|m| err.message.contains(m));
            (
                if limit {
                    "QUERY_TOO_COMPLEX"
                } else {
                    "BAD_USER_INPUT"
                },
                None,
            )
        }
    };
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", code);
    if let Some(secs) = retry_after {
        ext.set("retryAfterSeconds", secs);
    }
}

fn count_aliases(doc: &ExecutableDocument) -> usize {
    let mut total = 0;
    for (_, op) in doc.operations.iter() {
        total += count_in(&op.node.selection_set.node);
    }
    for fragment in doc.fragments.values() {
        total += count_in(&fragment.node.selection_set.node);
    }
    total
}

fn count_in(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_in(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_in(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}
