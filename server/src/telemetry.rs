use tracing_subscriber::{fmt, EnvFilter};

/// Structured logs to stderr; `RUST_LOG` filters (default `info`), `json` for machines.
pub fn init(format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}
