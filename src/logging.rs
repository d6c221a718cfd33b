//! Logging: `RUST_LOG` filters (default `info`), text or JSON lines on stdout.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Targets that write the values bound to SQL statements (password hashes, emails, payloads)
/// at debug level: held at `info` whatever `RUST_LOG` asks.
const BOUND_VALUES: [&str; 2] = ["tokio_postgres=info", "diesel=info"];

pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    for directive in BOUND_VALUES {
        if let Ok(d) = directive.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second init (tests build several apps in one process) is harmless, so its error is too.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
