//! Webhook secrets encrypted at rest (SPEC §7). With `WEBHOOKS_ENCRYPTION_KEY` set, a secret is
//! stored as `enc:v1:` + base64(nonce ‖ XChaCha20-Poly1305 ciphertext) in the same TEXT column;
//! without a prefix a stored value is plaintext, so rows written before the key was set keep
//! working. The key is process-global: installed once at startup, read by the dashboard's
//! service layer and by the dispatcher alike.

use std::sync::OnceLock;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    XChaCha20Poly1305, XNonce,
};

pub const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

static KEY: OnceLock<Key> = OnceLock::new();

struct Key {
    bytes: [u8; 32],
    cipher: XChaCha20Poly1305,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretBoxError {
    #[error("WEBHOOKS_ENCRYPTION_KEY must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)")]
    BadKey,
    #[error("a different encryption key is already installed in this process")]
    KeyConflict,
    #[error("a webhook secret is stored encrypted but no WEBHOOKS_ENCRYPTION_KEY is set")]
    NoKey,
    #[error("a stored webhook secret does not decrypt with WEBHOOKS_ENCRYPTION_KEY (wrong key or damaged value)")]
    Undecryptable,
}

/// Installs the key for this process. Installing the same key again is a no-op.
pub fn install(key_base64: &str) -> Result<(), SecretBoxError> {
    let bytes: [u8; 32] =
        STANDARD.decode(key_base64.trim()).ok().and_then(|b| b.try_into().ok()).ok_or(SecretBoxError::BadKey)?;
    let installed = KEY.get_or_init(|| Key { bytes, cipher: XChaCha20Poly1305::new(&bytes.into()) });
    if installed.bytes == bytes {
        Ok(())
    } else {
        Err(SecretBoxError::KeyConflict)
    }
}

pub fn enabled() -> bool {
    KEY.get().is_some()
}

/// The value to store for `secret`: encrypted when a key is installed, else as is.
pub fn seal(secret: &str) -> String {
    match KEY.get() {
        Some(key) => {
            let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
            let sealed =
                key.cipher.encrypt(&nonce, secret.as_bytes()).expect("XChaCha20-Poly1305 encrypts any length we store");
            let mut bytes = nonce.to_vec();
            bytes.extend_from_slice(&sealed);
            format!("{PREFIX}{}", STANDARD.encode(bytes))
        }
        None => secret.to_owned(),
    }
}

/// The clear secret from a stored value (plaintext passes through).
pub fn open(stored: &str) -> Result<String, SecretBoxError> {
    let Some(encoded) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_owned());
    };
    let key = KEY.get().ok_or(SecretBoxError::NoKey)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| SecretBoxError::Undecryptable)?;
    if bytes.len() <= NONCE_LEN {
        return Err(SecretBoxError::Undecryptable);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let clear = key.cipher.decrypt(XNonce::from_slice(nonce), sealed).map_err(|_| SecretBoxError::Undecryptable)?;
    String::from_utf8(clear).map_err(|_| SecretBoxError::Undecryptable)
}

/// For the dispatcher: the clear secrets; one that cannot be opened is logged (never its
/// value) and left out, so the delivery fails verification rather than leaking ciphertext.
pub fn open_all(stored: Vec<String>) -> Vec<String> {
    stored
        .into_iter()
        .filter_map(|s| open(&s).map_err(|err| tracing::error!(%err, "cannot read a webhook secret")).ok())
        .collect()
}

/// Whether a stored value is plaintext (for the startup step that encrypts old rows).
pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // One key for every test in this process: the key is global by design.
    const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn a_sealed_secret_opens_to_itself_and_hides_the_clear_text() {
        install(KEY_B64).unwrap();
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (a, b) = (seal(secret), seal(secret));
        assert!(a.starts_with(PREFIX) && !a.contains("MfKQ9r8"));
        assert_ne!(a, b, "a random nonce per seal");
        assert_eq!(open(&a).unwrap(), secret);
        assert_eq!(open(secret).unwrap(), secret, "plaintext rows pass through");
    }

    #[test]
    fn tampering_bad_keys_and_a_second_key_are_refused() {
        install(KEY_B64).unwrap();
        let mut sealed = seal("whsec_abc");
        sealed.replace_range(sealed.len() - 4.., "AAAA");
        assert_eq!(open(&sealed), Err(SecretBoxError::Undecryptable));
        assert_eq!(open("enc:v1:!!"), Err(SecretBoxError::Undecryptable));
        assert_eq!(install("c2hvcnQ="), Err(SecretBoxError::BadKey));
        assert_eq!(install("AQECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), Err(SecretBoxError::KeyConflict));
        assert_eq!(open_all(vec![sealed, seal("whsec_ok")]), vec!["whsec_ok".to_owned()]);
    }
}
