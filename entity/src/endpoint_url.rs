//! The endpoint URL rules of SPEC §7: `https://` only, a valid host, at most 2,048 characters.
//!
//! This module compiles to wasm as well, so the dashboard form and the server validate with
//! the same rules and show the same sentences. It only checks the *shape* of the URL; whether
//! the host is a public address is the server's SSRF guard (`server::delivery::ssrf`), which
//! relies on [`EndpointUrl::host`] reporting IP literals as IPs, whatever their spelling.

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};
use url::{Host, Url};

/// SPEC §7: "≤ 2,048 chars".
pub const MAX_URL_CHARS: usize = 2_048;

/// DNS limits (RFC 1035): 63 octets a label, 253 for the whole name without the root dot.
const MAX_LABEL_LEN: usize = 63;
const MAX_DOMAIN_LEN: usize = 253;

/// Why a URL was refused. Each message is a sentence telling the user what to fix; the
/// dashboard form and the API show them unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("Enter the endpoint URL.")]
    Empty,
    #[error("The URL is {length} characters long; shorten it to at most 2,048 characters.")]
    TooLong { length: usize },
    #[error("Enter a full URL starting with https://, for example https://example.com/webhooks.")]
    MissingScheme,
    #[error("The URL must start with https:// (it starts with {scheme}:).")]
    NotHttps { scheme: String },
    #[error("This is not a valid URL. Enter an address like https://example.com/webhooks.")]
    Invalid,
    #[error("The URL must include a host name, for example https://example.com/webhooks.")]
    MissingHost,
    #[error("The host name is not valid: use a domain name (letters, digits, hyphens and dots) or an IP address.")]
    InvalidHost,
    #[error("The port must be a number between 1 and 65535.")]
    InvalidPort,
    #[error("The URL must not contain a username or password.")]
    Credentials,
    #[error("The URL must not contain a fragment (the part after #); receivers never see it.")]
    Fragment,
}

/// The host of an endpoint, as the SSRF guard needs it: IP literals are already IPs (the
/// `url` crate normalises `https://2130706433/`, `https://0x7f.0.0.1/` and
/// `https://0177.0.0.1/` to `127.0.0.1`), domains are lower-case ASCII (punycode) without a
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EndpointHost {
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl EndpointHost {
    /// Parses a bare host (no scheme, no port) with the same rules as a URL's host: WHATWG
    /// IPv4 spellings, `[v6]` literals, IDNA, trailing dot removed. Used by the server's
    /// allow-list so that its entries compare equal to what [`EndpointUrl::host`] returns.
    pub fn parse(input: &str) -> Result<EndpointHost, UrlError> {
        let host = Host::parse(input.trim()).map_err(|_| UrlError::InvalidHost)?;
        match host {
            Host::Domain(domain) => normalise_domain(&domain).map(EndpointHost::Domain),
            Host::Ipv4(ip) => Ok(EndpointHost::Ipv4(ip)),
            Host::Ipv6(ip) => Ok(EndpointHost::Ipv6(ip)),
        }
    }

    /// True when the host is an IP literal rather than a name to resolve.
    pub fn is_ip(&self) -> bool {
        !matches!(self, EndpointHost::Domain(_))
    }
}

impl fmt::Display for EndpointHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointHost::Domain(domain) => f.write_str(domain),
            EndpointHost::Ipv4(ip) => write!(f, "{ip}"),
            EndpointHost::Ipv6(ip) => write!(f, "{ip}"),
        }
    }
}

/// A validated, normalised endpoint URL (SPEC §7). The only way to build one is
/// [`EndpointUrl::parse`], so holding one means the rules were checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    /// Checks `input` against the rules of SPEC §7 and normalises it (trimmed, trailing dot of
    /// the domain removed, IPv4 literals in dotted form).
    pub fn parse(input: &str) -> Result<EndpointUrl, UrlError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        check_length(input)?;
        let mut url = Url::parse(input).map_err(|error| parse_error(input, error))?;
        check_scheme(&url)?;
        check_no_credentials(&url)?;
        check_no_fragment(&url)?;
        check_port(&url)?;
        normalise_host(&mut url)?;
        // Punycode can make the normalised form longer than what was typed; the stored form
        // is the one that must fit.
        check_length(url.as_str())?;
        Ok(EndpointUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL, e.g. to hand to an HTTP client.
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The host, with IP literals as IPs so the SSRF guard classifies them without DNS.
    pub fn host(&self) -> EndpointHost {
        match self.0.host() {
            Some(Host::Ipv4(ip)) => EndpointHost::Ipv4(ip),
            Some(Host::Ipv6(ip)) => EndpointHost::Ipv6(ip),
            // `parse` guarantees a host; an empty name would just fail to resolve.
            Some(Host::Domain(domain)) => EndpointHost::Domain(domain.to_owned()),
            None => EndpointHost::Domain(String::new()),
        }
    }

    /// The explicit port, or 443 (the scheme is always https).
    pub fn port_or_default(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl AsRef<str> for EndpointUrl {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl FromStr for EndpointUrl {
    type Err = UrlError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        EndpointUrl::parse(input)
    }
}

impl TryFrom<String> for EndpointUrl {
    type Error = UrlError;

    fn try_from(input: String) -> Result<Self, Self::Error> {
        EndpointUrl::parse(&input)
    }
}

impl From<EndpointUrl> for String {
    fn from(url: EndpointUrl) -> String {
        url.0.into()
    }
}

fn check_length(input: &str) -> Result<(), UrlError> {
    let length = input.chars().count();
    if length > MAX_URL_CHARS {
        return Err(UrlError::TooLong { length });
    }
    Ok(())
}

/// Maps the `url` crate's errors to sentences. When the text has a scheme other than https
/// (`http://`, with or without a host), saying so is the most useful answer.
fn parse_error(input: &str, error: url::ParseError) -> UrlError {
    if let Some(scheme) = typed_scheme(input) {
        if !scheme.eq_ignore_ascii_case("https") {
            return UrlError::NotHttps { scheme: scheme.to_ascii_lowercase() };
        }
    }
    match error {
        url::ParseError::RelativeUrlWithoutBase => UrlError::MissingScheme,
        url::ParseError::EmptyHost => UrlError::MissingHost,
        url::ParseError::InvalidPort => UrlError::InvalidPort,
        url::ParseError::IdnaError
        | url::ParseError::InvalidIpv4Address
        | url::ParseError::InvalidIpv6Address
        | url::ParseError::InvalidDomainCharacter => UrlError::InvalidHost,
        _ => UrlError::Invalid,
    }
}

/// The `scheme` of `scheme://…` when the text starts with something scheme-shaped.
fn typed_scheme(input: &str) -> Option<&str> {
    let (scheme, _) = input.split_once("://")?;
    let mut chars = scheme.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (starts_with_letter && rest_ok).then_some(scheme)
}

fn check_scheme(url: &Url) -> Result<(), UrlError> {
    // SPEC §7: https only, so payloads and signatures never travel in clear text.
    if url.scheme() != "https" {
        return Err(UrlError::NotHttps { scheme: url.scheme().to_owned() });
    }
    Ok(())
}

fn check_no_credentials(url: &Url) -> Result<(), UrlError> {
    // Credentials in the URL would be stored and shown in logs in clear text; receivers
    // authenticate us by the signature instead.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(())
}

fn check_no_fragment(url: &Url) -> Result<(), UrlError> {
    // A fragment is never sent over HTTP; refusing it avoids a URL that looks different from
    // what the receiver sees.
    if url.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    Ok(())
}

fn check_port(url: &Url) -> Result<(), UrlError> {
    // `url` accepts port 0, which no server listens on.
    if url.port() == Some(0) {
        return Err(UrlError::InvalidPort);
    }
    Ok(())
}

/// Ensures there is a host and puts a domain in its canonical form (no trailing dot), so
/// equal endpoints compare equal and the allow-list matches `example.com.` as `example.com`.
fn normalise_host(url: &mut Url) -> Result<(), UrlError> {
    let domain = match url.host() {
        None => return Err(UrlError::MissingHost),
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => return Ok(()),
        Some(Host::Domain(domain)) => domain.to_owned(),
    };
    let normalised = normalise_domain(&domain)?;
    if normalised != domain {
        // Re-parsing through `set_host` also turns `127.0.0.1.`-like names into IPv4.
        url.set_host(Some(&normalised)).map_err(|_| UrlError::InvalidHost)?;
    }
    Ok(())
}

/// Removes one trailing dot (the DNS root) and checks the labels. The `url` crate accepts
/// names like `*.x`, `a..b` or `.` that no resolver would; refusing them here gives the user
/// a clear sentence instead of a DNS failure later.
fn normalise_domain(domain: &str) -> Result<String, UrlError> {
    let name = domain.strip_suffix('.').unwrap_or(domain).to_ascii_lowercase();
    if name.is_empty() || name.len() > MAX_DOMAIN_LEN || !name.split('.').all(is_valid_label) {
        return Err(UrlError::InvalidHost);
    }
    Ok(name)
}

/// Letters, digits, hyphens (not at either end) and underscores (seen in real host names).
fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> EndpointUrl {
        EndpointUrl::parse(input).unwrap_or_else(|e| panic!("{input} was refused: {e}"))
    }

    fn err(input: &str) -> UrlError {
        EndpointUrl::parse(input).expect_err(input)
    }

    #[test]
    fn a_plain_https_url_is_accepted_and_defaults_to_port_443() {
        let url = ok("https://example.com/webhooks");
        assert_eq!(url.as_str(), "https://example.com/webhooks");
        assert_eq!(url.host(), EndpointHost::Domain("example.com".into()));
        assert_eq!(url.port_or_default(), 443);
    }

    #[test]
    fn surrounding_whitespace_is_trimmed() {
        assert_eq!(ok("  https://example.com/x \n").as_str(), "https://example.com/x");
    }

    #[test]
    fn http_is_rejected_with_a_sentence_asking_for_https() {
        let error = err("http://example.com/webhooks");
        assert_eq!(error, UrlError::NotHttps { scheme: "http".into() });
        assert!(error.to_string().starts_with("The URL must start with https://"));
    }

    #[test]
    fn http_without_a_host_still_asks_for_https() {
        assert_eq!(err("http://"), UrlError::NotHttps { scheme: "http".into() });
    }

    #[test]
    fn other_schemes_are_rejected() {
        assert_eq!(err("ftp://example.com/"), UrlError::NotHttps { scheme: "ftp".into() });
        assert!(matches!(err("file:///etc/passwd"), UrlError::NotHttps { .. }));
        assert!(matches!(err("javascript:alert(1)"), UrlError::NotHttps { .. }));
    }

    #[test]
    fn an_upper_case_scheme_and_host_are_normalised() {
        assert_eq!(ok("HTTPS://EXAMPLE.COM/Path").as_str(), "https://example.com/Path");
    }

    #[test]
    fn an_empty_or_blank_input_asks_for_the_url() {
        assert_eq!(err(""), UrlError::Empty);
        assert_eq!(err("   \t"), UrlError::Empty);
        assert_eq!(UrlError::Empty.to_string(), "Enter the endpoint URL.");
    }

    #[test]
    fn a_url_of_exactly_2048_characters_is_accepted() {
        let prefix = "https://example.com/";
        let url = format!("{prefix}{}", "a".repeat(MAX_URL_CHARS - prefix.len()));
        assert_eq!(ok(&url).as_str().len(), MAX_URL_CHARS);
    }

    #[test]
    fn a_url_longer_than_2048_characters_is_refused() {
        let prefix = "https://example.com/";
        let url = format!("{prefix}{}", "a".repeat(MAX_URL_CHARS + 1 - prefix.len()));
        assert_eq!(err(&url), UrlError::TooLong { length: 2_049 });
        assert!(err(&url).to_string().contains("at most 2,048 characters"));
    }

    #[test]
    fn a_user_name_is_refused() {
        assert_eq!(err("https://user@example.com/"), UrlError::Credentials);
    }

    #[test]
    fn a_user_name_and_password_are_refused() {
        let error = err("https://user:secret@example.com/");
        assert_eq!(error, UrlError::Credentials);
        assert_eq!(error.to_string(), "The URL must not contain a username or password.");
    }

    #[test]
    fn a_password_alone_is_refused() {
        assert_eq!(err("https://:secret@example.com/"), UrlError::Credentials);
    }

    #[test]
    fn a_fragment_is_refused_even_when_empty() {
        assert_eq!(err("https://example.com/x#section"), UrlError::Fragment);
        assert_eq!(err("https://example.com/x#"), UrlError::Fragment);
    }

    #[test]
    fn a_trailing_dot_on_the_domain_is_removed() {
        let url = ok("https://example.com./hooks?x=1");
        assert_eq!(url.as_str(), "https://example.com/hooks?x=1");
        assert_eq!(url.host(), EndpointHost::Domain("example.com".into()));
    }

    #[test]
    fn a_trailing_dot_is_removed_while_the_port_is_kept() {
        let url = ok("https://example.com.:8443/");
        assert_eq!(url.as_str(), "https://example.com:8443/");
        assert_eq!(url.port_or_default(), 8443);
    }

    #[test]
    fn malformed_domain_names_are_refused() {
        for input in [
            "https://example.com../",
            "https://a..b/",
            "https://./",
            "https://.example.com/",
            "https://*.example.com/",
            "https://-bad.example.com/",
            "https://exa mple.com/",
        ] {
            assert_eq!(err(input), UrlError::InvalidHost, "{input}");
        }
    }

    #[test]
    fn an_over_long_label_is_refused() {
        let input = format!("https://{}.com/", "a".repeat(64));
        assert_eq!(err(&input), UrlError::InvalidHost);
    }

    #[test]
    fn an_internationalised_domain_is_stored_as_punycode() {
        let url = ok("https://bücher.de/");
        assert_eq!(url.host(), EndpointHost::Domain("xn--bcher-kva.de".into()));
    }

    #[test]
    fn an_ipv6_literal_keeps_its_port_and_path() {
        let url = ok("https://[::1]:8443/x");
        assert_eq!(url.host(), EndpointHost::Ipv6(Ipv6Addr::LOCALHOST));
        assert_eq!(url.port_or_default(), 8443);
        assert_eq!(url.as_str(), "https://[::1]:8443/x");
    }

    #[test]
    fn an_ipv4_mapped_ipv6_literal_is_reported_as_ipv6_for_the_guard_to_unwrap() {
        let url = ok("https://[::ffff:127.0.0.1]/");
        assert_eq!(url.host(), EndpointHost::Ipv6(Ipv4Addr::LOCALHOST.to_ipv6_mapped()));
    }

    #[test]
    fn a_dotted_ipv4_literal_is_reported_as_ipv4() {
        assert_eq!(ok("https://10.1.2.3/").host(), EndpointHost::Ipv4(Ipv4Addr::new(10, 1, 2, 3)));
    }

    #[test]
    fn a_decimal_ipv4_spelling_is_normalised_to_dotted_form() {
        let url = ok("https://2130706433/");
        assert_eq!(url.host(), EndpointHost::Ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(url.as_str(), "https://127.0.0.1/");
    }

    #[test]
    fn a_hexadecimal_ipv4_spelling_is_normalised_to_dotted_form() {
        assert_eq!(ok("https://0x7f.0.0.1/").host(), EndpointHost::Ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(ok("https://0x7f000001/").host(), EndpointHost::Ipv4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn an_octal_ipv4_spelling_is_normalised_to_dotted_form() {
        assert_eq!(ok("https://0177.0.0.1/").host(), EndpointHost::Ipv4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn short_and_trailing_dot_ipv4_spellings_are_normalised() {
        assert_eq!(ok("https://127.1/").host(), EndpointHost::Ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(ok("https://127.0.0.1./").host(), EndpointHost::Ipv4(Ipv4Addr::LOCALHOST));
        assert_eq!(ok("https://0/").host(), EndpointHost::Ipv4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn an_explicit_port_is_kept() {
        let url = ok("https://example.com:8443/hook");
        assert_eq!(url.port_or_default(), 8443);
        assert_eq!(url.as_str(), "https://example.com:8443/hook");
    }

    #[test]
    fn the_default_port_written_out_is_dropped_from_the_text() {
        let url = ok("https://example.com:443/hook");
        assert_eq!(url.as_str(), "https://example.com/hook");
        assert_eq!(url.port_or_default(), 443);
    }

    #[test]
    fn port_zero_and_out_of_range_ports_are_refused() {
        assert_eq!(err("https://example.com:0/"), UrlError::InvalidPort);
        assert_eq!(err("https://example.com:65536/"), UrlError::InvalidPort);
        assert_eq!(err("https://example.com:abc/"), UrlError::InvalidPort);
    }

    #[test]
    fn path_and_query_are_kept() {
        let url = ok("https://example.com/a/b?c=1&d=two%20words");
        assert_eq!(url.as_str(), "https://example.com/a/b?c=1&d=two%20words");
        assert_eq!(url.as_url().query(), Some("c=1&d=two%20words"));
    }

    #[test]
    fn text_without_a_scheme_asks_for_a_full_url() {
        assert_eq!(err("example.com/webhooks"), UrlError::MissingScheme);
        assert_eq!(err("not a url at all"), UrlError::MissingScheme);
    }

    #[test]
    fn garbage_input_is_refused_with_a_sentence() {
        for input in ["https://", "https://[::1", "https://exa<mple.com/", "::::", "%%%"] {
            let error = err(input);
            assert!(error.to_string().ends_with('.'), "{input}: {error}");
        }
        assert_eq!(err("https://"), UrlError::MissingHost);
        assert_eq!(err("https://[::1"), UrlError::InvalidHost);
        assert_eq!(err("https://1.2.3.4.5/"), UrlError::InvalidHost);
    }

    #[test]
    fn display_and_string_conversion_give_the_normalised_url() {
        let url = ok("https://Example.com./x");
        assert_eq!(url.to_string(), "https://example.com/x");
        assert_eq!(String::from(url), "https://example.com/x");
    }

    #[test]
    fn serde_round_trips_through_a_json_string() {
        let url = ok("https://example.com:8443/x?y=1");
        let json = serde_json::to_string(&url).expect("serialise");
        assert_eq!(json, r#""https://example.com:8443/x?y=1""#);
        let back: EndpointUrl = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, url);
    }

    #[test]
    fn serde_refuses_an_invalid_url_with_the_user_facing_message() {
        let error = serde_json::from_str::<EndpointUrl>(r#""http://example.com/""#).expect_err("http must be refused");
        assert!(error.to_string().contains("must start with https://"), "{error}");
    }

    #[test]
    fn a_bare_host_parses_with_the_same_rules_as_a_url_host() {
        assert_eq!(EndpointHost::parse("Example.COM."), Ok(EndpointHost::Domain("example.com".into())));
        assert_eq!(EndpointHost::parse("0x7f.1"), Ok(EndpointHost::Ipv4(Ipv4Addr::LOCALHOST)));
        assert_eq!(EndpointHost::parse("[::1]"), Ok(EndpointHost::Ipv6(Ipv6Addr::LOCALHOST)));
        assert_eq!(EndpointHost::parse("host:80"), Err(UrlError::InvalidHost));
        assert_eq!(EndpointHost::parse("*.example.com"), Err(UrlError::InvalidHost));
    }
}
