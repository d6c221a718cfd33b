//! Random secrets handed to clients (refresh tokens, API keys) and their stored hashes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub const REFRESH_TOKEN_PREFIX: &str = "fwr_";
pub const API_KEY_PREFIX: &str = "fwk_";

/// A fresh secret: the prefix, then 256 random bits.
pub fn generate(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256: these secrets have full entropy, so a fast hash is enough and keeps look-ups cheap.
pub fn digest(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// What may be shown of a secret later (to tell keys apart): its first characters.
pub fn display_prefix(secret: &str) -> String {
    secret.chars().take(API_KEY_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_prefixed_and_hash_stably() {
        let a = generate(API_KEY_PREFIX);
        let b = generate(API_KEY_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with(API_KEY_PREFIX));
        assert_eq!(a.len(), API_KEY_PREFIX.len() + 43);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        assert_eq!(display_prefix(&a).len(), 10);
    }
}
