//! The one outbound HTTP client for webhook traffic: the SSRF guard at connect time, no
//! redirects, no proxies, bounded time, the extra CA for test receivers (SPEC §6–7).

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;

use super::ssrf::{guarded_client_builder, Guard};

pub const USER_AGENT: &str = concat!("Webhooks/", env!("CARGO_PKG_VERSION"));

pub fn build_client(guard: Arc<Guard>, extra_ca: Option<&Path>, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    // The guard's builder: checked resolver, no proxy, no redirects (SPEC §6-7).
    let mut builder = guarded_client_builder(guard)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .user_agent(USER_AGENT)
        .pool_idle_timeout(Duration::from_secs(30));
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path).with_context(|| format!("reading WEBHOOKS_EXTRA_CA {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("parsing WEBHOOKS_EXTRA_CA {}", path.display()))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder.build().context("building the webhook HTTP client")
}

/// A network failure explained to the customer: what failed, in their terms.
pub fn describe_error(err: &reqwest::Error) -> String {
    let chain = error_chain(err);
    if let Some(guard) = find_guard_error(err) {
        return guard;
    }
    if err.is_timeout() {
        return "Timed out: no response within the time limit.".to_owned();
    }
    let lower = chain.to_lowercase();
    if lower.contains("certificate") || lower.contains("invalidcertificate") || lower.contains("unknownissuer") {
        return format!("TLS certificate error: {}", tail(&chain));
    }
    if lower.contains("tls") || lower.contains("handshake") || lower.contains("alert") {
        return format!("TLS handshake failed: {}", tail(&chain));
    }
    if lower.contains("connection refused") {
        return "Connection refused: nothing is listening at that address and port.".to_owned();
    }
    if lower.contains("dns") || lower.contains("failed to lookup") || lower.contains("resolve") {
        return format!("DNS lookup failed: {}", tail(&chain));
    }
    if err.is_connect() {
        return format!("Could not connect: {}", tail(&chain));
    }
    format!("Request failed: {}", tail(&chain))
}

fn find_guard_error(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(guard) = e.downcast_ref::<super::ssrf::GuardError>() {
            return Some(guard.to_string());
        }
        source = e.source();
    }
    None
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    parts.join(": ")
}

/// The innermost, most specific part of an error chain.
fn tail(chain: &str) -> &str {
    chain.rsplit(": ").find(|p| !p.trim().is_empty()).unwrap_or(chain)
}
