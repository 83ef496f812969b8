//! A failed request explained to the customer: what failed, in their terms, and what to
//! change. Shown in the delivery log and beside the URL field when an endpoint is saved.
//!
//! TLS failures are read from the `rustls::Error` itself, not from the text of the error
//! chain: reqwest hands it up inside an `io::Error` inside an `io::Error`, and
//! `io::Error::source()` skips the error it wraps, so it is found through `io::Error::get_ref`
//! (see [`find`]).

use std::error::Error as StdError;

use chrono::DateTime;
use rustls::{pki_types::ServerName, CertificateError, Error as TlsError, InvalidMessage};

use super::ssrf::GuardError;

/// One network failure of an attempt or of the reachability check, as the customer reads it.
pub fn describe_error(err: &reqwest::Error) -> String {
    if let Some(guard) = find::<GuardError>(err) {
        return guard.to_string();
    }
    if err.is_timeout() {
        return "Timed out: no response within the time limit.".to_owned();
    }
    if let Some(tls) = find::<TlsError>(err) {
        return describe_tls(tls);
    }
    let chain = error_chain(err);
    let lower = chain.to_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
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

/// What a TLS failure means for the receiver's operator, and what to fix.
pub fn describe_tls(err: &TlsError) -> String {
    match err {
        TlsError::InvalidCertificate(cert) => describe_certificate(cert),
        TlsError::NoCertificatesPresented => "TLS handshake failed: the receiver presented no certificate.".to_owned(),
        TlsError::AlertReceived(alert) => format!(
            "TLS handshake refused by the receiver (alert: {alert:?}). It must accept TLS 1.2 or 1.3 and serve a \
             certificate for this host name."
        ),
        TlsError::InvalidMessage(InvalidMessage::InvalidContentType) | TlsError::InappropriateMessage { .. } => {
            "No TLS at that address: the receiver answered, but not in TLS. Is it serving plain HTTP on this port? \
             Webhook URLs are https:// and need a TLS listener."
                .to_owned()
        }
        TlsError::PeerIncompatible(why) => format!(
            "TLS handshake failed: the receiver's TLS is incompatible with ours ({why:?}). It must accept TLS 1.2 \
             or 1.3 with a current cipher suite."
        ),
        other => format!("TLS handshake failed: {other}."),
    }
}

fn describe_certificate(err: &CertificateError) -> String {
    use CertificateError as C;
    match err {
        C::UnknownIssuer => "TLS certificate not trusted: it is not issued by a certificate authority we trust \
                             (it is self-signed, or signed by a private CA). Serve a certificate from a public CA, \
                             such as Let's Encrypt, with its intermediate certificates."
            .to_owned(),
        C::ExpiredContext { not_after, .. } => {
            format!("TLS certificate expired on {}. Renew the receiver's certificate.", utc(not_after.as_secs()))
        }
        C::Expired => "TLS certificate expired. Renew the receiver's certificate.".to_owned(),
        C::NotValidYetContext { not_before, .. } => format!(
            "TLS certificate not valid yet: it starts on {}. Check its dates and the receiver's clock.",
            utc(not_before.as_secs())
        ),
        C::NotValidYet => "TLS certificate not valid yet. Check its dates and the receiver's clock.".to_owned(),
        C::NotValidForNameContext { expected, presented } => {
            let names: Vec<&str> = presented.iter().filter_map(|p| presented_name(p)).collect();
            let names = if names.is_empty() { "no host name".to_owned() } else { names.join(", ") };
            format!(
                "TLS certificate is for another host: it names {names}, not {}. Serve a certificate that \
                 includes this host name.",
                host(expected)
            )
        }
        C::NotValidForName => "TLS certificate is for another host: it does not include this host name.".to_owned(),
        C::Revoked => "TLS certificate revoked by its issuer. Serve a new certificate.".to_owned(),
        C::BadSignature => "TLS certificate's signature does not verify: the certificate chain is broken.".to_owned(),
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
            "TLS certificate not issued for a server: its extended key usage does not allow server authentication."
                .to_owned()
        }
        C::BadEncoding => "TLS certificate could not be read: it is not valid DER.".to_owned(),
        C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => {
                "TLS certificate is a CA certificate: the receiver presents a certificate authority's own \
                 certificate as its server certificate. Serve a server certificate issued by that CA."
                    .to_owned()
            }
            _ => format!("TLS certificate rejected: {}.", other.0),
        },
        other => format!("TLS certificate rejected: {other}."),
    }
}

fn host(name: &ServerName<'_>) -> String {
    name.to_str().into_owned()
}

/// webpki reports the names a certificate holds as `DnsName("a.example")` or
/// `IpAddress(192.0.2.1)`; the customer wants the name alone.
fn presented_name(presented: &str) -> Option<&str> {
    if let Some(dns) = presented.strip_prefix("DnsName(\"") {
        return dns.strip_suffix("\")");
    }
    presented.strip_prefix("IpAddress(")?.strip_suffix(')')
}

fn utc(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .map_or_else(|| format!("{secs} s after 1970"), |at| at.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// The first `T` anywhere in the chain. reqwest hands a TLS error up as an `io::Error`
/// inside an `io::Error`, and `io::Error::source()` skips the error it wraps, so an
/// `io::Error` is followed into what it wraps (`get_ref`) instead.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = match e.downcast_ref::<std::io::Error>().and_then(std::io::Error::get_ref) {
            Some(wrapped) => Some(wrapped as &(dyn StdError + 'static)),
            None => e.source(),
        };
    }
    None
}

fn error_chain(err: &dyn StdError) -> String {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::{pki_types::UnixTime, AlertDescription, OtherError};

    use super::*;

    fn certificate(err: CertificateError) -> String {
        describe_tls(&TlsError::InvalidCertificate(err))
    }

    #[test]
    fn an_untrusted_issuer_says_what_to_serve_instead() {
        let text = certificate(CertificateError::UnknownIssuer);
        assert!(text.starts_with("TLS certificate not trusted"), "{text}");
        assert!(text.contains("self-signed"), "{text}");
    }

    #[test]
    fn an_expired_certificate_gives_its_end_date() {
        let text = certificate(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        });
        assert_eq!(text, "TLS certificate expired on 2023-11-14 22:13 UTC. Renew the receiver's certificate.");
    }

    #[test]
    fn a_certificate_for_another_host_names_both() {
        let text = certificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("hooks.acme.test").unwrap(),
            presented: vec!["DnsName(\"api.acme.test\")".to_owned(), "IpAddress(192.0.2.1)".to_owned()],
        });
        assert!(text.contains("not hooks.acme.test"), "{text}");
        assert!(text.contains("it names api.acme.test, 192.0.2.1, not"), "{text}");
        let none = certificate(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("hooks.acme.test").unwrap(),
            presented: vec![],
        });
        assert!(none.contains("it names no host name"), "{none}");
    }

    #[test]
    fn a_ca_certificate_served_as_the_servers_own_is_named() {
        let text = certificate(CertificateError::Other(OtherError(Arc::new(webpki::Error::CaUsedAsEndEntity))));
        assert!(text.starts_with("TLS certificate is a CA certificate"), "{text}");
        assert!(!text.contains("CaUsedAsEndEntity"), "{text}");
    }

    #[test]
    fn plain_http_on_the_port_is_not_a_certificate_problem() {
        let text = describe_tls(&TlsError::InvalidMessage(InvalidMessage::InvalidContentType));
        assert!(text.contains("plain HTTP"), "{text}");
    }

    #[test]
    fn a_refusal_names_the_alert() {
        let text = describe_tls(&TlsError::AlertReceived(AlertDescription::HandshakeFailure));
        assert!(text.contains("HandshakeFailure"), "{text}");
    }

    #[test]
    fn the_tls_error_is_found_inside_nested_io_errors() {
        // As reqwest hands it up: `io::Error::source()` skips it, `get_ref` does not.
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, TlsError::NoCertificatesPresented);
        let outer = std::io::Error::other(inner);
        assert!(outer.source().and_then(|e| e.source()).is_none());
        assert_eq!(find::<TlsError>(&outer), Some(&TlsError::NoCertificatesPresented));
    }

    #[test]
    fn the_tail_is_the_innermost_part() {
        assert_eq!(tail("error sending request: client error (Connect): tcp connect error"), "tcp connect error");
    }
}
