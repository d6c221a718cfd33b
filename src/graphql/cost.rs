//! Charges each operation's points to its caller's budget once its complexity is known (after
//! validation, before any resolver runs), refuses it with `RATE_LIMITED` when the budget is
//! spent, and says what it cost in `extensions.cost`. Every transport passes here: HTTP, a
//! batch's operations one by one, and WebSocket operations (opening a subscription pays once).

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextSubscribe, NextValidation,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};
use async_graphql_value::{ConstValue, Value};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::app::App;
use crate::auth::Principal;
use crate::db::audit::RequestMeta;
use crate::limits::Charge;
use crate::limits::cost::{self, INGESTION_FIELDS, Kind};

pub struct Cost;

impl ExtensionFactory for Cost {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(CostExtension::default())
    }
}

/// Where the HTTP layer finds what its operation cost, for the `RateLimit-*` headers.
#[derive(Default)]
pub struct Charged(Mutex<Option<Charge>>);

impl Charged {
    pub fn take(&self) -> Option<Charge> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn put(&self, charge: Charge) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(charge);
    }
}

/// Created per request.
#[derive(Default)]
struct CostExtension {
    operation_name: Mutex<Option<String>>,
    kind: Mutex<Option<Kind>>,
    /// Shared with a WebSocket operation's stream, whose first answer reports it.
    charge: Arc<Mutex<Option<Charge>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait::async_trait]
impl Extension for CostExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        report(&self.charge, &mut response);
        response
    }

    /// WebSocket operations' answers do not pass through `request`: the first one says what
    /// opening the operation cost.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let charge = self.charge.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                report(&charge, &mut response);
                response
            })
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        lock(&self.operation_name).clone_from(&request.operation_name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let name = lock(&self.operation_name).clone();
        *lock(&self.kind) = kind_of(&doc, name.as_deref(), variables);
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        let Some(limiter) = ctx.data_opt::<App>().and_then(|app| app.limiter.as_deref()) else {
            return Ok(result);
        };
        let principal = ctx.data_opt::<Principal>().unwrap_or(&Principal::Anonymous);
        let address = ctx.data_opt::<RequestMeta>().and_then(|m| m.ip.as_deref());
        let kind = lock(&self.kind).unwrap_or(Kind::Query);
        let points = cost::points(kind, result.complexity);
        let charge = limiter
            .charge(&limiter.payer(principal, address), points)
            .await;
        let refusal = charge.refusal();
        // The request's own data is attached from here on (not yet in `request`).
        if let Some(slot) = ctx.data_opt::<Arc<Charged>>() {
            slot.put(charge.clone());
        }
        *lock(&self.charge) = Some(charge);
        match refusal {
            None => Ok(result),
            Some(refused) => {
                let mut err = ServerError::new(refused.to_string(), None);
                err.source = Some(Arc::new(refused));
                Err(vec![err])
            }
        }
    }
}

/// Puts the charge, once, into `response.extensions.cost`.
fn report(charge: &Mutex<Option<Charge>>, response: &mut Response) {
    if let Some(charge) = lock(charge).take()
        && let Ok(value) = async_graphql::Value::from_json(charge.to_json())
    {
        response.extensions.insert("cost".into(), value);
    }
}

/// The kind of the operation that will run (`None` when the name matches none: async-graphql
/// refuses it after validation). Ingestion's items are counted from the document and its
/// variables as sent, without parsing them as inputs (the resolver does that once).
fn kind_of(doc: &ExecutableDocument, name: Option<&str>, variables: &Variables) -> Option<Kind> {
    let op: &OperationDefinition = match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => &ops.get(name)?.node,
        (DocumentOperations::Multiple(ops), None) => &ops.values().next()?.node,
    };
    Some(match op.ty {
        OperationType::Query => Kind::Query,
        OperationType::Subscription => Kind::Subscription,
        OperationType::Mutation => {
            let ingesting = op
                .selection_set
                .node
                .items
                .iter()
                .filter_map(|s| match &s.node {
                    Selection::Field(f)
                        if INGESTION_FIELDS.contains(&f.node.name.node.as_str()) =>
                    {
                        Some(&f.node)
                    }
                    _ => None,
                });
            let mut kind = Kind::Mutation;
            for field in ingesting {
                let items: usize = field
                    .arguments
                    .iter()
                    .map(|(_, value)| match &value.node {
                        Value::List(items) => items.len(),
                        Value::Variable(v) => match variables.get(v) {
                            Some(ConstValue::List(items)) => items.len(),
                            _ => 0,
                        },
                        _ => 0,
                    })
                    .sum();
                kind = match kind {
                    Kind::Ingestion { items: before } => Kind::Ingestion {
                        items: before + items,
                    },
                    _ => Kind::Ingestion { items },
                };
            }
            kind
        }
    })
}
