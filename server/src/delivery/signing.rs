//! Webhook signatures (SPEC §5): every request carries BOTH schemes, computed from ONE secret.
//!
//! - Stripe-style `X-Webhook-Signature: t=<t>,v1=<hex>`: HMAC-SHA256 over `"<t>.<body>"`, keyed
//!   with the secret string's UTF-8 bytes (the whole `whsec_…` string), so receivers can use the
//!   `stripe` libraries unchanged.
//! - Standard Webhooks `webhook-id` / `webhook-timestamp` / `webhook-signature: v1,<base64>`:
//!   HMAC-SHA256 over `"<id>.<t>.<body>"`, keyed with the base64-decoded bytes after `whsec_`,
//!   so receivers can use the `standardwebhooks` libraries unchanged.
//!
//! During the 24 h overlap after a secret is regenerated, both secrets sign and each header
//! carries one signature per secret (SPEC §5).

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, KeyInit, Mac};
use rand::{rngs::OsRng, RngCore};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Every secret starts with this; it is part of the Stripe-scheme key (SPEC §5).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a generated secret (SPEC §5 allows 24–32; we use the maximum).
pub const GENERATED_KEY_BYTES: usize = 32;
/// Key sizes accepted when parsing: the Standard Webhooks range, so imported secrets work too.
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;

/// Header names. Standard Webhooks names are lowercase by its spec. Note for `http` users:
/// `HeaderName::from_static` only accepts lowercase, so use `try_from` (or lowercase) for
/// [`HEADER_SIGNATURE`]; HTTP header names are case-insensitive anyway.
pub const HEADER_WEBHOOK_ID: &str = "webhook-id";
pub const HEADER_WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_WEBHOOK_SIGNATURE: &str = "webhook-signature";
pub const HEADER_SIGNATURE: &str = "X-Webhook-Signature";

/// Why a string is not a usable webhook secret. Messages never echo the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a webhook secret must start with `whsec_`")]
    MissingPrefix,
    #[error("the part after `whsec_` is not valid standard base64")]
    InvalidBase64,
    #[error("the secret key is {0} bytes; it must be 24 to 64 bytes")]
    InvalidLength(usize),
}

/// An endpoint's signing secret, `whsec_<base64 key>`.
///
/// Invariant: only built by [`WebhookSecret::generate`] or [`WebhookSecret::parse`], so the
/// text always has the prefix and a valid 24–64 byte key. `Debug` is redacted and there is no
/// `Display`: secrets are never logged (SPEC §7).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut key = [0u8; GENERATED_KEY_BYTES];
        OsRng.fill_bytes(&mut key);
        WebhookSecret(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    /// Validates a stored or user-supplied secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or(SecretError::MissingPrefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| SecretError::InvalidBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::InvalidLength(key.len()));
        }
        Ok(WebhookSecret(text.to_owned()))
    }

    /// The full secret, for storage and for the one-time "show in full" view (SPEC §5).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Standard Webhooks key: the base64-decoded bytes after `whsec_`.
    pub fn key_bytes(&self) -> Vec<u8> {
        let encoded = &self.0[SECRET_PREFIX.len()..];
        // Cannot fail: the constructors validated the encoding (see the type's invariant).
        STANDARD.decode(encoded).unwrap_or_default()
    }

    /// What the dashboard shows after the first view, e.g. `whsec_••••••••3f9a`.
    pub fn masked(&self) -> String {
        let tail_start = self.0.len().saturating_sub(4).max(SECRET_PREFIX.len());
        // The secret is ASCII (prefix + base64), so any byte index is a char boundary.
        format!("{SECRET_PREFIX}••••••••{}", &self.0[tail_start..])
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not even the masked tail: Debug output ends up in logs (SPEC §7).
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// A secret's two HMAC keys, set up once for all the requests of a batch: each signature
/// clones the keyed state (the key's inner and outer blocks already hashed) instead of
/// hashing the key again, and the Standard Webhooks key is base64-decoded once.
#[derive(Clone)]
pub struct SigningKey {
    /// Keyed with the whole secret string (Stripe scheme).
    stripe: HmacSha256,
    /// Keyed with the decoded bytes after `whsec_` (Standard Webhooks).
    standard: HmacSha256,
}

impl SigningKey {
    pub fn new(secret: &WebhookSecret) -> Self {
        SigningKey { stripe: keyed(secret.as_str().as_bytes()), standard: keyed(&secret.key_bytes()) }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    let Ok(mac) = HmacSha256::new_from_slice(key) else {
        // HMAC accepts keys of any length (RFC 2104); hmac's own `KeyInit::new` relies on it.
        unreachable!("HMAC-SHA256 accepts keys of any length");
    };
    mac
}

/// HMAC-SHA256 over the concatenation of `parts`, from a keyed state.
fn hmac_sha256(keyed: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Stripe's `v1` value: hex HMAC-SHA256 over `"<t>.<body>"`, key = the whole secret string.
pub fn stripe_signature(secret: &WebhookSecret, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::new();
    push_stripe(&mut out, &SigningKey::new(secret), &timestamp.to_string(), body);
    out
}

fn push_stripe(out: &mut String, key: &SigningKey, t: &str, body: &[u8]) {
    let mut hex = [0u8; 64];
    // Cannot fail: 64 bytes of room for 32 bytes as hex.
    let _ = hex::encode_to_slice(hmac_sha256(&key.stripe, &[t.as_bytes(), b".", body]), &mut hex);
    out.extend(hex.iter().map(|&b| char::from(b)));
}

/// One Standard Webhooks signature, `v1,<base64 HMAC-SHA256 over "<id>.<t>.<body>">`.
pub fn standard_signature(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::new();
    push_standard(&mut out, &SigningKey::new(secret), msg_id, &timestamp.to_string(), body);
    out
}

fn push_standard(out: &mut String, key: &SigningKey, msg_id: &str, t: &str, body: &[u8]) {
    let mac = hmac_sha256(&key.standard, &[msg_id.as_bytes(), b".", t.as_bytes(), b".", body]);
    out.push_str("v1,");
    STANDARD.encode_string(mac, out);
}

/// All signature headers for one request. `secrets` = the current secret first, then the
/// previous one while the 24 h rotation overlap lasts (SPEC §5). `msg_id` is the event id, the
/// same on every retry and replay (SPEC §5, §6). Callers pass at least one secret; with none the
/// signature headers carry no signatures and every receiver rejects the request.
pub fn signature_headers(
    secrets: &[&WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let keys: Vec<SigningKey> = secrets.iter().map(|s| SigningKey::new(s)).collect();
    signed_headers(&keys, msg_id, timestamp, body)
}

/// [`signature_headers`] from keys set up beforehand ([`SigningKey`]), as the engine sends.
/// Standard Webhooks lists several signatures space-separated; Stripe repeats `v1=` once per
/// secret after a single `t=`.
pub fn signed_headers(keys: &[SigningKey], msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<(&'static str, String)> {
    let t = timestamp.to_string();
    let mut standard = String::with_capacity(48 * keys.len());
    let mut stripe = String::with_capacity(t.len() + 2 + 68 * keys.len());
    stripe.push_str("t=");
    stripe.push_str(&t);
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            standard.push(' ');
        }
        push_standard(&mut standard, key, msg_id, &t, body);
        stripe.push_str(",v1=");
        push_stripe(&mut stripe, key, &t, body);
    }
    vec![
        (HEADER_WEBHOOK_ID, msg_id.to_owned()),
        (HEADER_WEBHOOK_TIMESTAMP, t),
        (HEADER_WEBHOOK_SIGNATURE, standard),
        (HEADER_SIGNATURE, stripe),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // The vector documented by Standard Webhooks / Svix.
    const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SVIX_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SVIX_TIMESTAMP: i64 = 1614265330;
    const SVIX_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SVIX_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    // Computed independently with Python's standard library at authoring time:
    //   python3 -c 'import hmac,hashlib; print(hmac.new(
    //     b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    //     b"1614265330." + b"{\"test\": 2432232314}", hashlib.sha256).hexdigest())'
    const STRIPE_HEX: &str = "2e37df5d4a028c51a7f3133d64ae1e300d2c2c900f1b1d49d4369ad2530f8964";

    // A second secret: base64 of the 32 ASCII bytes "this is the previous secret key!".
    const PREVIOUS_SECRET: &str = "whsec_dGhpcyBpcyB0aGUgcHJldmlvdXMgc2VjcmV0IGtleSE=";
    // Same Python construction as above with this secret:
    //   hmac.new(b"whsec_dGhpcyBp…leSE=", b"1614265330." + body, hashlib.sha256).hexdigest()
    const PREVIOUS_STRIPE_HEX: &str = "c53628b2ee5ad75a88db26c05094ba35c9ed408d576a81ce2b54778c61cfd240";
    //   "v1," + base64(hmac.new(b64decode("dGhpcyBp…leSE="),
    //                            b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, sha256))
    const PREVIOUS_STANDARD: &str = "v1,vgvJ5s8hKf10W0QCcmDi56/FYGy/isQGp4KrCL/SZhU=";

    fn secret(text: &str) -> WebhookSecret {
        WebhookSecret::parse(text).expect("test secret is valid")
    }

    fn header<'a>(headers: &'a [(&'static str, String)], name: &str) -> &'a str {
        headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).expect("header present")
    }

    #[test]
    fn standard_signature_matches_the_documented_standard_webhooks_vector() {
        let s = secret(SVIX_SECRET);
        assert_eq!(standard_signature(&s, SVIX_MSG_ID, SVIX_TIMESTAMP, SVIX_BODY), SVIX_SIGNATURE);
    }

    #[test]
    fn stripe_signature_matches_an_independently_computed_hmac() {
        let s = secret(SVIX_SECRET);
        assert_eq!(stripe_signature(&s, SVIX_TIMESTAMP, SVIX_BODY), STRIPE_HEX);
    }

    #[test]
    fn one_secret_produces_all_four_headers_with_one_signature_each() {
        let s = secret(SVIX_SECRET);
        let headers = signature_headers(&[&s], SVIX_MSG_ID, SVIX_TIMESTAMP, SVIX_BODY);
        assert_eq!(headers.len(), 4);
        assert_eq!(header(&headers, "webhook-id"), SVIX_MSG_ID);
        assert_eq!(header(&headers, "webhook-timestamp"), "1614265330");
        assert_eq!(header(&headers, "webhook-signature"), SVIX_SIGNATURE);
        assert_eq!(header(&headers, "X-Webhook-Signature"), format!("t=1614265330,v1={STRIPE_HEX}"));
    }

    #[test]
    fn two_secrets_give_two_entries_in_each_signature_header_current_first() {
        let current = secret(SVIX_SECRET);
        let previous = secret(PREVIOUS_SECRET);
        let headers = signature_headers(&[&current, &previous], SVIX_MSG_ID, SVIX_TIMESTAMP, SVIX_BODY);
        assert_eq!(header(&headers, "webhook-signature"), format!("{SVIX_SIGNATURE} {PREVIOUS_STANDARD}"));
        assert_eq!(
            header(&headers, "X-Webhook-Signature"),
            format!("t=1614265330,v1={STRIPE_HEX},v1={PREVIOUS_STRIPE_HEX}")
        );
    }

    #[test]
    fn keys_set_up_once_sign_each_request_as_fresh_ones_do() {
        let (current, previous) = (secret(SVIX_SECRET), secret(PREVIOUS_SECRET));
        let keys = [SigningKey::new(&current), SigningKey::new(&previous)];
        let first = signed_headers(&keys, SVIX_MSG_ID, SVIX_TIMESTAMP, SVIX_BODY);
        let second = signed_headers(&keys, "msg_other", SVIX_TIMESTAMP + 7, b"{}");
        assert_eq!(first, signature_headers(&[&current, &previous], SVIX_MSG_ID, SVIX_TIMESTAMP, SVIX_BODY));
        assert_eq!(header(&first, "webhook-signature"), format!("{SVIX_SIGNATURE} {PREVIOUS_STANDARD}"));
        assert_eq!(second, signature_headers(&[&current, &previous], "msg_other", SVIX_TIMESTAMP + 7, b"{}"));
        assert_ne!(header(&first, "webhook-signature"), header(&second, "webhook-signature"));
        assert!(!format!("{:?}", keys[0]).contains("MfKQ"));
    }

    #[test]
    fn changing_one_byte_of_the_body_changes_both_signatures() {
        let s = secret(SVIX_SECRET);
        let other = br#"{"test": 2432232315}"#;
        assert_ne!(standard_signature(&s, SVIX_MSG_ID, SVIX_TIMESTAMP, other), SVIX_SIGNATURE);
        assert_ne!(stripe_signature(&s, SVIX_TIMESTAMP, other), STRIPE_HEX);
    }

    #[test]
    fn changing_the_timestamp_or_message_id_changes_the_signatures() {
        let s = secret(SVIX_SECRET);
        assert_ne!(standard_signature(&s, "msg_other", SVIX_TIMESTAMP, SVIX_BODY), SVIX_SIGNATURE);
        assert_ne!(standard_signature(&s, SVIX_MSG_ID, SVIX_TIMESTAMP + 1, SVIX_BODY), SVIX_SIGNATURE);
        assert_ne!(stripe_signature(&s, SVIX_TIMESTAMP + 1, SVIX_BODY), STRIPE_HEX);
    }

    #[test]
    fn debug_output_does_not_contain_any_part_of_the_secret() {
        let s = secret(SVIX_SECRET);
        let debug = format!("{s:?} {:?}", Some(&s));
        assert!(!debug.contains("MfKQ"), "{debug}");
        assert!(!debug.contains("LaSw"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn masked_form_shows_prefix_bullets_and_only_the_last_four_characters() {
        assert_eq!(secret(SVIX_SECRET).masked(), "whsec_••••••••LaSw");
    }

    #[test]
    fn generated_secrets_have_the_prefix_32_key_bytes_and_differ() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert!(a.as_str().starts_with("whsec_"));
        assert_eq!(a.key_bytes().len(), 32);
        assert_ne!(a, b);
        assert_eq!(WebhookSecret::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn key_bytes_are_the_decoded_part_after_the_prefix() {
        assert_eq!(secret(PREVIOUS_SECRET).key_bytes(), b"this is the previous secret key!");
    }

    #[test]
    fn parse_rejects_a_missing_or_wrong_prefix() {
        let bare = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(WebhookSecret::parse(bare), Err(SecretError::MissingPrefix));
        let wrong = "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(WebhookSecret::parse(wrong), Err(SecretError::MissingPrefix));
    }

    #[test]
    fn parse_rejects_invalid_base64() {
        let bad = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La!!Sw";
        assert_eq!(WebhookSecret::parse(bad), Err(SecretError::InvalidBase64));
    }

    #[test]
    fn parse_rejects_keys_shorter_than_24_or_longer_than_64_bytes() {
        // 16 bytes ("0123456789abcdef") and 65 bytes.
        let short = format!("whsec_{}", STANDARD.encode(b"0123456789abcdef"));
        assert_eq!(WebhookSecret::parse(&short), Err(SecretError::InvalidLength(16)));
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert_eq!(WebhookSecret::parse(&long), Err(SecretError::InvalidLength(65)));
        assert_eq!(WebhookSecret::parse("whsec_"), Err(SecretError::InvalidLength(0)));
    }

    #[test]
    fn parse_accepts_keys_of_24_and_64_bytes() {
        assert!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 24]))).is_ok());
        assert!(WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 64]))).is_ok());
    }
}
