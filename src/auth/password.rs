//! Passwords: argon2id with OWASP's current minimum (19 MiB, 2 passes, 1 lane).

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use crate::error::{AppError, AppResult};

pub const MIN_LENGTH: usize = 10;
pub const MAX_LENGTH: usize = 1024;

fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a random password, verified against when the account does not exist, so that a
/// failed log-in costs the same either way.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random: [u8; 16] = rand::random();
    hash_blocking(&hex::encode(random)).expect("hashing a fixed-size password succeeds")
});

pub fn validate(password: &str, field: &str) -> AppResult<()> {
    let len = password.chars().count();
    if len < MIN_LENGTH {
        return Err(AppError::bad_input(format!(
            "{field}: must be at least {MIN_LENGTH} characters"
        )));
    }
    if password.len() > MAX_LENGTH {
        return Err(AppError::bad_input(format!(
            "{field}: must be at most {MAX_LENGTH} bytes"
        )));
    }
    if password
        .chars()
        .all(|c| c == password.chars().next().unwrap_or(' '))
    {
        return Err(AppError::bad_input(format!(
            "{field}: must not repeat one character"
        )));
    }
    Ok(())
}

fn hash_blocking(password: &str) -> AppResult<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash: {e}")))
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(hash) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Hashes off the async workers: argon2 is deliberately slow.
pub async fn hash(password: &str) -> AppResult<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(AppError::internal)?
}

/// Verifies against `hash`, or against a dummy when there is no account.
pub async fn verify(password: &str, hash: Option<&str>) -> bool {
    let password = password.to_string();
    let hash = hash.map(str::to_string);
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_blocking(&password, &h),
        None => {
            let _ = verify_blocking(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_owasp_parameters() {
        let hash = hash_blocking("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_blocking("correct horse battery", &hash));
        assert!(!verify_blocking("correct horse batterx", &hash));
        assert!(!verify_blocking("anything", "not a hash"));
    }

    #[test]
    fn rejects_weak_passwords() {
        assert!(validate("short", "password").is_err());
        assert!(validate("aaaaaaaaaaaa", "password").is_err());
        assert!(validate(&"x".repeat(2000), "password").is_err());
        assert!(validate("a decent passphrase", "password").is_ok());
    }
}
