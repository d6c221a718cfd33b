//! PostgreSQL: the pool, migrations, and [`Db::scoped`], the one way queries reach tenant data.
//!
//! Every pooled connection runs as the role `fahwa_app` (no BYPASSRLS), and every unit of work is
//! a transaction that first states its [`Scope`]; the row-level security policies read that
//! setting. A query that forgot its tenant filter therefore still sees only its own tenant.

pub mod api_keys;
pub mod audit;
pub mod binds;
pub mod integrations;
pub mod local_cluster;
pub mod locks;
pub mod members;
pub mod migrate;
pub mod replaceable;
pub mod reports;
pub mod schema;
pub mod sessions;
pub mod tenants;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::sql_types::Text;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
};
use diesel_async::{AnsiTransactionManager, AsyncConnection, AsyncPgConnection, RunQueryDsl};
use diesel_async::{SimpleAsyncConnection, TransactionManager};
use futures_util::FutureExt;
use scoped_futures::ScopedBoxFuture;
use uuid::Uuid;

use crate::error::AppResult;

pub type PgPool = bb8::Pool<AsyncDieselConnectionManager<AsyncPgConnection>>;
pub type Conn = AsyncPgConnection;

/// Whose rows a unit of work may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's rows.
    Tenant(Uuid),
    /// Every tenant's rows, read-only by policy: platform operators.
    Operator,
    /// No tenant's rows: look-ups before sign-in go through the `SECURITY DEFINER` functions.
    Anonymous,
}

#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    statements: Arc<AtomicU64>,
    /// The longest one statement of an analytics read may run (lock waits included); 0: no
    /// limit.
    analytics_timeout_ms: u64,
}

/// Counts the statements sent, so tests can prove that batching keeps them flat.
struct StatementCounter(Arc<AtomicU64>);

impl Instrumentation for StatementCounter {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::StartQuery { .. } = event {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Db {
    /// Builds the pool without connecting, so a server whose database is down starts, reports
    /// not-ready, and recovers by itself.
    pub fn new(url: &str, size: u32) -> Self {
        Self::with_limits(url, size, Duration::from_secs(5), Duration::ZERO)
    }

    /// `new`, waiting at most `acquire` for a free connection (then `Busy`), and stopping any
    /// statement of an analytics read after `analytics_timeout` (zero: never).
    pub fn with_limits(
        url: &str,
        size: u32,
        acquire: Duration,
        analytics_timeout: Duration,
    ) -> Self {
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        let mut config = ManagerConfig::default();
        config.custom_setup = Box::new(move |url| {
            let counter = counter.clone();
            async move {
                let mut conn = AsyncPgConnection::establish(url).await?;
                conn.batch_execute("SET ROLE fahwa_app; SET application_name = 'fahwa'")
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(StatementCounter(counter));
                Ok(conn)
            }
            .boxed()
        });
        // bb8 checks every connection it hands out; the default check is a `SELECT 1` round
        // trip, which doubled the statements of a cached dashboard answer. The driver's own
        // closed flag (set when the server goes away) catches dead connections without one.
        config.recycling_method = RecyclingMethod::CustomFunction(Box::new(|conn| {
            let broken = PoolableConnection::is_broken(conn);
            async move {
                match broken {
                    true => Err(diesel::result::Error::BrokenTransactionManager),
                    false => Ok(()),
                }
            }
            .boxed()
        }));
        let manager = AsyncDieselConnectionManager::new_with_config(url, config);
        let pool = bb8::Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .connection_timeout(acquire)
            .build_unchecked(manager);
        Self {
            pool,
            statements,
            analytics_timeout_ms: analytics_timeout.as_millis() as u64,
        }
    }

    /// Statements sent through this pool since it was built.
    pub fn statement_count(&self) -> u64 {
        AtomicU64::load(&self.statements, Ordering::Relaxed)
    }

    pub fn pool_state(&self) -> bb8::State {
        self.pool.state()
    }

    pub async fn ping(&self) -> AppResult<()> {
        let mut conn = self.pool.get().await?;
        conn.batch_execute("SELECT 1").await?;
        Ok(())
    }

    /// Runs `work` in one transaction that sees only what `scope` allows.
    pub async fn scoped<'a, R, F>(&self, scope: Scope, work: F) -> AppResult<R>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> ScopedBoxFuture<'a, 'c, AppResult<R>> + Send + 'a,
        R: Send + 'a,
    {
        self.transaction("BEGIN", scope, work).await
    }

    /// `tenant`, but every statement of `work` reads the same snapshot (REPEATABLE READ): for
    /// reads that add up tables another transaction moves rows between.
    pub async fn tenant_snapshot<'a, R, F>(&self, tenant_id: Uuid, work: F) -> AppResult<R>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> ScopedBoxFuture<'a, 'c, AppResult<R>> + Send + 'a,
        R: Send + 'a,
    {
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        self.transaction(begin, Scope::Tenant(tenant_id), work)
            .await
    }

    /// A read of analytics for `tenant`: READ ONLY, one snapshot, and each statement stopped
    /// after the analytics timeout, so a runaway query gives its connection back.
    pub async fn analytics<'a, R, F>(&self, tenant_id: Uuid, work: F) -> AppResult<R>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> ScopedBoxFuture<'a, 'c, AppResult<R>> + Send + 'a,
        R: Send + 'a,
    {
        let begin = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; \
             SELECT set_config('statement_timeout', '{}', true)",
            self.analytics_timeout_ms
        );
        let timeout = Duration::from_millis(self.analytics_timeout_ms);
        self.transaction(&begin, Scope::Tenant(tenant_id), work)
            .await
            .map_err(|e| e.when_canceled(timeout))
    }

    async fn transaction<'a, R, F>(&self, begin: &str, scope: Scope, work: F) -> AppResult<R>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> ScopedBoxFuture<'a, 'c, AppResult<R>> + Send + 'a,
        R: Send + 'a,
    {
        let mut conn = self.pool.get().await?;
        let conn: &mut Conn = &mut conn;
        // The scope is set in the same round trip as BEGIN: it is only ever a UUID and a flag,
        // written by us, so it is safe as literal text.
        let (tenant, operator) = scope_settings(scope);
        let begin = format!(
            "{begin}; SELECT set_config('fahwa.tenant_id', '{tenant}', true), \
             set_config('fahwa.operator', '{operator}', true)"
        );
        if let Err(e) = AnsiTransactionManager::begin_transaction_sql(conn, &begin).await {
            // BEGIN may have run before the failure: never hand the pool an open transaction.
            let _ = conn.batch_execute("ROLLBACK").await;
            return Err(e.into());
        }
        let result = work(conn).await;
        match result {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(conn).await?;
                Ok(value)
            }
            Err(err) => {
                AnsiTransactionManager::rollback_transaction(conn).await?;
                Err(err)
            }
        }
    }

    /// One statement outside any transaction and tenant: only for the `SECURITY DEFINER`
    /// look-ups that run before a tenant is known (row-level security shows nothing else here).
    pub async fn outside_tenants<'a, R, F>(&self, work: F) -> AppResult<R>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> ScopedBoxFuture<'a, 'c, AppResult<R>> + Send + 'a,
        R: Send + 'a,
    {
        let mut conn = self.pool.get().await?;
        work(&mut conn).await
    }

    pub async fn tenant<'a, R, F>(&self, tenant_id: Uuid, work: F) -> AppResult<R>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> ScopedBoxFuture<'a, 'c, AppResult<R>> + Send + 'a,
        R: Send + 'a,
    {
        self.scoped(Scope::Tenant(tenant_id), work).await
    }
}

/// Changes the scope inside a running transaction (e.g. to record what outlives a tenant).
fn scope_settings(scope: Scope) -> (String, &'static str) {
    match scope {
        Scope::Tenant(id) => (id.to_string(), "off"),
        Scope::Operator => (String::new(), "on"),
        Scope::Anonymous => (String::new(), "off"),
    }
}

pub async fn set_scope(conn: &mut Conn, scope: Scope) -> AppResult<()> {
    let (tenant, operator) = scope_settings(scope);
    diesel::sql_query(
        "SELECT set_config('fahwa.tenant_id', $1, true), set_config('fahwa.operator', $2, true)",
    )
    .bind::<Text, _>(tenant)
    .bind::<Text, _>(operator)
    .execute(conn)
    .await?;
    Ok(())
}

/// True when `err` is a unique-constraint violation on the named constraint or index.
pub fn is_unique_violation(err: &diesel::result::Error, constraint: &str) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info
        ) if info.constraint_name() == Some(constraint)
    )
}
