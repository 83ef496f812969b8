//! The one outbound HTTP client for webhook traffic: the SSRF guard at connect time, no
//! redirects, no proxies, bounded time, the extra CA for test receivers (SPEC §6–7). Its
//! failures are put in the customer's words by `failure`.

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
