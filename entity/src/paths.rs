//! The dashboard's page paths, written once: the dashboard links and redirects with them,
//! the server's login redirect and notification emails too. Here rather than in `app`
//! because the email jobs link to pages without depending on the UI crate. The router in
//! `app/src/lib.rs` declares the same paths (`path!` takes literals only).
use std::fmt::Display;

/// The endpoint list, the dashboard's home page.
pub const fn webhooks() -> &'static str {
    "/settings/webhooks"
}

/// The form that adds an endpoint.
pub const fn new_endpoint() -> &'static str {
    "/settings/webhooks/new"
}

/// One endpoint's page: its settings, secret, health and delivery log.
pub fn endpoint(id: impl Display) -> String {
    format!("{}/{id}", webhooks())
}

pub const fn api_keys() -> &'static str {
    "/settings/api-keys"
}

pub const fn team() -> &'static str {
    "/settings/team"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_page_sits_under_the_endpoint_list() {
        assert_eq!(endpoint("ep_1"), "/settings/webhooks/ep_1");
        assert!(new_endpoint().starts_with(webhooks()));
    }
}
