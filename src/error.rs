//! Which error to use where: everything below the HTTP layer returns [`AppError`]. Resolvers use
//! `?` on it freely: async-graphql keeps the value as the error's source, and
//! [`crate::graphql::errors`] turns it into the contract's `extensions.code` in one place.
//! `Internal` carries the real cause for the log; its text never reaches a client.

use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The caller is not signed in, or their credentials were rejected.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller is signed in but their role or scopes do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The input breaks a rule; the message says which field and why.
    #[error("{0}")]
    BadInput(String),
    /// Nothing of that kind with that ID is visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Too many attempts; the client should wait.
    #[error("too many attempts, retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Every database connection stayed busy for too long: shed load, let the client retry.
    #[error("the server is busy, retry in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// The query is deeper, costlier or more aliased than the server allows.
    #[error("{0}")]
    TooComplex(String),
    /// Anything else. Logged with its cause, shown as a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Self::BadInput(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }

    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Self::Unauthenticated(msg.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// How long the client should wait before retrying, where that is known.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after_secs } | Self::Busy { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        }
    }

    /// Logs an `Internal` error's cause (never shown to the client) and counts it in
    /// `fahwa_internal_errors_total`; other errors are the client's and are not logged.
    pub fn report(&self, during: &str) {
        if let Self::Internal(cause) = self {
            metrics::counter!("fahwa_internal_errors_total").increment(1);
            tracing::error!(error = format!("{cause:#}"), "{during}: internal error");
        }
    }

    /// The contract's `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::BadInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::RateLimited { .. } | Self::Busy { .. } => "RATE_LIMITED",
            Self::TooComplex(_) => "QUERY_TOO_COMPLEX",
            Self::Internal(_) => "INTERNAL",
        }
    }
}

impl AppError {
    /// A statement stopped by `statement_timeout` (SQLSTATE 57014) as the caller's to narrow,
    /// rather than an internal failure.
    pub fn when_canceled(self, timeout: std::time::Duration) -> AppError {
        let canceled = matches!(&self, Self::Internal(cause)
            if cause.downcast_ref::<diesel::result::Error>().is_some_and(|e| matches!(e,
                diesel::result::Error::DatabaseError(_, info)
                    if info.message().contains("statement timeout"))));
        if canceled {
            metrics::counter!("fahwa_statement_timeouts_total").increment(1);
            Self::TooComplex(format!(
                "the query ran longer than {} s and was stopped; ask for a shorter range or a coarser granularity",
                timeout.as_secs_f64()
            ))
        } else {
            self
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        match err {
            diesel::result::Error::NotFound => Self::NotFound("record"),
            other => Self::Internal(other.into()),
        }
    }
}

impl From<bb8::RunError<diesel_async::pooled_connection::PoolError>> for AppError {
    fn from(err: bb8::RunError<diesel_async::pooled_connection::PoolError>) -> Self {
        match err {
            bb8::RunError::TimedOut => {
                metrics::counter!("fahwa_db_pool_timeouts_total").increment(1);
                Self::Busy {
                    retry_after_secs: 1,
                }
            }
            other => Self::Internal(anyhow::anyhow!("database pool: {other}")),
        }
    }
}

impl From<Arc<AppError>> for AppError {
    fn from(err: Arc<AppError>) -> Self {
        match &*err {
            Self::Unauthenticated(m) => Self::Unauthenticated(m.clone()),
            Self::Forbidden(m) => Self::Forbidden(m.clone()),
            Self::BadInput(m) => Self::BadInput(m.clone()),
            Self::NotFound(what) => Self::NotFound(what),
            Self::RateLimited { retry_after_secs } => Self::RateLimited {
                retry_after_secs: *retry_after_secs,
            },
            Self::TooComplex(m) => Self::TooComplex(m.clone()),
            Self::Busy { retry_after_secs } => Self::Busy {
                retry_after_secs: *retry_after_secs,
            },
            Self::Internal(e) => Self::Internal(anyhow::anyhow!("{e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_pool_asks_the_client_to_retry() {
        let err =
            AppError::from(bb8::RunError::<diesel_async::pooled_connection::PoolError>::TimedOut);
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.retry_after_secs(), Some(1));
        assert_eq!(AppError::NotFound("member").retry_after_secs(), None);
        assert_eq!(
            AppError::internal(anyhow::anyhow!("secret detail")).to_string(),
            "internal error"
        );
    }
}
