//! Secrets at rest (connectors' credentials, webhook secrets): sealed with AES-256-GCM (ring)
//! under a key from configuration. A sealed value names its key by id, so keys rotate: the
//! first configured key seals, every configured key opens, and a value sealed under an older
//! key says so (`needs_rotation`) until it is sealed again. The context a value belongs to
//! (e.g. `integration:<id>:credentials`) is bound as associated data: a value moved to another
//! row does not open. Keys and plaintexts are never logged or shown.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::{Config, Environment};
use crate::error::{AppError, AppResult};

const VERSION: &str = "v1";

pub struct Vault {
    current: String,
    keys: HashMap<String, LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("current", &self.current)
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// One configured key: `<id>:<32 bytes in base64>`.
fn parse_key(text: &str) -> anyhow::Result<(String, LessSafeKey)> {
    let (id, encoded) = text
        .split_once(':')
        .ok_or_else(|| anyhow::anyhow!("a secret key is written <id>:<base64 of 32 bytes>"))?;
    anyhow::ensure!(
        !id.is_empty()
            && id.len() <= 32
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "a secret key's id is 1 to 32 letters, digits, '-' or '_'"
    );
    let bytes = STANDARD
        .decode(encoded.trim())
        .map_err(|_| anyhow::anyhow!("secret key {id}: not base64"))?;
    anyhow::ensure!(
        bytes.len() == 32,
        "secret key {id}: must be 32 bytes, not {}",
        bytes.len()
    );
    let key = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| anyhow::anyhow!("secret key {id}: not an AES-256 key"))?;
    Ok((id.to_string(), LessSafeKey::new(key)))
}

impl Vault {
    /// The keys of `secret_keys`, the first sealing. Production refuses to start without one;
    /// development makes one for the process (what it seals is lost when it stops) and says so.
    pub fn from_config(config: &Config) -> anyhow::Result<Vault> {
        let mut given = config.secret_keys.clone();
        if given.is_empty() {
            anyhow::ensure!(
                config.env != Environment::Production,
                "FAHWA_SECRET_KEYS is required when FAHWA_ENV=production (e.g. [k1:<base64 of 32 random bytes>])"
            );
            tracing::warn!(
                "no FAHWA_SECRET_KEYS set: generated a key for this process (development mode); secrets it seals are unreadable after it stops"
            );
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| anyhow::anyhow!("no randomness for a secret key"))?;
            given.push(format!("dev:{}", STANDARD.encode(bytes)));
        }
        Self::from_keys(&given)
    }

    pub fn from_keys(given: &[String]) -> anyhow::Result<Vault> {
        let mut keys = HashMap::new();
        let mut current = None;
        for text in given {
            let (id, key) = parse_key(text)?;
            anyhow::ensure!(!keys.contains_key(&id), "secret key id {id} is given twice");
            current.get_or_insert_with(|| id.clone());
            keys.insert(id, key);
        }
        let current = current.ok_or_else(|| anyhow::anyhow!("no secret key given"))?;
        Ok(Vault {
            current,
            keys,
            random: SystemRandom::new(),
        })
    }

    /// The id of the key that seals.
    pub fn current_key(&self) -> &str {
        &self.current
    }

    /// `plaintext` sealed under the current key, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> AppResult<String> {
        let key = &self.keys[&self.current];
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| AppError::internal(anyhow::anyhow!("no randomness for a nonce")))?;
        let mut sealed = plaintext.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| AppError::internal(anyhow::anyhow!("sealing failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!(
            "{VERSION}.{}.{}",
            self.current,
            URL_SAFE_NO_PAD.encode(out)
        ))
    }

    /// The plaintext of a sealed value of `context`. A value that was altered, belongs to
    /// another context, or was sealed under a key no longer configured does not open.
    pub fn open(&self, sealed: &str, context: &str) -> AppResult<Vec<u8>> {
        let refuse = |why: &str| AppError::internal(anyhow::anyhow!("a sealed secret {why}"));
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("is not in the sealed format"));
        };
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| refuse(&format!("names key {id}, which is not configured")))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| refuse("is not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(refuse("is too short"));
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refuse("has no nonce"))?;
        let mut rest = rest.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut rest)
            .map_err(|_| refuse("does not open: altered, or another context's"))?;
        Ok(plain.to_vec())
    }

    /// Whether `sealed` was sealed under another key than the current one.
    pub fn needs_rotation(&self, sealed: &str) -> bool {
        sealed.split('.').nth(1) != Some(self.current.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; 32]))
    }

    #[test]
    fn sealed_values_open_in_their_context_only() {
        let vault = Vault::from_keys(&[key("k1", 1)]).unwrap();
        let sealed = vault
            .seal(b"sk_live_secret", "integration:1:credentials")
            .unwrap();
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("sk_live"));
        assert_ne!(
            sealed,
            vault
                .seal(b"sk_live_secret", "integration:1:credentials")
                .unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(
            vault.open(&sealed, "integration:1:credentials").unwrap(),
            b"sk_live_secret"
        );
        assert!(
            vault.open(&sealed, "integration:2:credentials").is_err(),
            "moved to another row"
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(
            vault
                .open(
                    std::str::from_utf8(&tampered).unwrap(),
                    "integration:1:credentials"
                )
                .is_err()
        );
        assert!(vault.open("v1.k1.", "integration:1:credentials").is_err());
        assert!(
            vault
                .open("plain text", "integration:1:credentials")
                .is_err()
        );
    }

    #[test]
    fn keys_rotate_and_old_ones_stay_readable() {
        let old = Vault::from_keys(&[key("k1", 1)]).unwrap();
        let sealed = old.seal(b"whsec_1", "c").unwrap();
        let rotated = Vault::from_keys(&[key("k2", 2), key("k1", 1)]).unwrap();
        assert_eq!(rotated.current_key(), "k2");
        assert_eq!(rotated.open(&sealed, "c").unwrap(), b"whsec_1");
        assert!(rotated.needs_rotation(&sealed));
        let again = rotated
            .seal(&rotated.open(&sealed, "c").unwrap(), "c")
            .unwrap();
        assert!(!rotated.needs_rotation(&again));
        let retired = Vault::from_keys(&[key("k2", 2)]).unwrap();
        let err = retired.open(&sealed, "c").unwrap_err();
        assert_eq!(
            err.to_string(),
            "internal error",
            "nothing of the key or value is shown"
        );
    }

    #[test]
    fn configured_keys_are_checked_and_never_printed() {
        assert!(Vault::from_keys(&[]).is_err());
        assert!(Vault::from_keys(&["k1".into()]).is_err());
        assert!(Vault::from_keys(&[format!("k1:{}", STANDARD.encode([1u8; 16]))]).is_err());
        assert!(Vault::from_keys(&[key("k1", 1), key("k1", 2)]).is_err());
        assert!(Vault::from_keys(&[key("bad id", 1)]).is_err());
        let vault = Vault::from_keys(&[key("k1", 7)]).unwrap();
        let shown = format!("{vault:?}");
        assert!(!shown.contains(&STANDARD.encode([7u8; 32])), "{shown}");
        let production = Config {
            env: Environment::Production,
            ..Config::default()
        };
        assert!(Vault::from_config(&production).is_err());
        assert!(Vault::from_config(&Config::default()).is_ok());
    }
}
