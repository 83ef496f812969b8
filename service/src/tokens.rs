//! Random tokens and their SHA-256 hashes: API keys and session tokens are stored only as
//! hashes. Here, not in the server crate, because the dashboard creates API keys too.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chacha20poly1305::aead::{rand_core::RngCore, OsRng};
use sha2::{Digest, Sha256};

/// `whk_` + 32 random bytes, base64url. The prefix makes leaked keys greppable by scanners.
pub fn new_api_key() -> String {
    format!("whk_{}", random_token(32))
}

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// SHA-256 hex. Enough for high-entropy random tokens, which need no salt or stretching.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// What a list shows of a key: enough to tell keys apart, useless to an attacker.
pub fn key_prefix(key: &str) -> String {
    key.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed_to_hex() {
        let (a, b) = (new_api_key(), new_api_key());
        assert!(a.starts_with("whk_") && a.len() == 4 + 43, "{a}");
        assert_ne!(a, b);
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(key_prefix(&a), a[..12]);
    }
}
