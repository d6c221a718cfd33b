//! Access tokens: HS256 JWTs of at most 15 minutes, algorithm pinned, `iss`, `aud`, `exp` and
//! `nbf` checked, and a key id so that keys can rotate (old keys verify, the current one signs).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use super::principal::MemberClaims;
use crate::config::{Config, Environment};

pub const ISSUER: &str = "fahwa";
pub const AUDIENCE: &str = "fahwa-api";
const MIN_SECRET_BYTES: usize = 32;
/// Clock skew tolerated between instances, in `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: Uuid,
    tid: Uuid,
    role: Role,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    op: bool,
    fam: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
}

/// Whether a token with `exp` is refused at `now` (Unix seconds), as jsonwebtoken decides.
pub fn expired(exp: i64, now: i64) -> bool {
    exp < now - LEEWAY_SECS as i64
}

pub struct TokenKeys {
    current_kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    ttl_secs: u64,
    /// Signs links to report files; derived from the signing secret, never the secret itself.
    link_key: [u8; 32],
}

pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

fn key_id(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.as_bytes())[..6])
}

impl TokenKeys {
    /// In production a missing or short key is an error; in development a random key is made
    /// (tokens then die with the process) and the log says so.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let secret = match (&config.jwt_secret, config.env) {
            (Some(s), _) if s.len() >= MIN_SECRET_BYTES => s.clone(),
            (Some(_), Environment::Production) => anyhow::bail!(
                "FAHWA_JWT_SECRET is too weak: production needs at least {MIN_SECRET_BYTES} bytes"
            ),
            (None, Environment::Production) => {
                anyhow::bail!("FAHWA_JWT_SECRET is required when FAHWA_ENV=production")
            }
            (weak, Environment::Development) => {
                if weak.is_some() {
                    tracing::warn!(
                        "FAHWA_JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes; using a generated key instead"
                    );
                } else {
                    tracing::warn!(
                        "no FAHWA_JWT_SECRET set: generated a signing key for this process (development mode); tokens end when it stops"
                    );
                }
                super::secrets::generate("dev_")
            }
        };
        let mut decoding = HashMap::new();
        for s in std::iter::once(&secret).chain(config.jwt_previous_secrets.iter()) {
            decoding.insert(key_id(s), DecodingKey::from_secret(s.as_bytes()));
        }
        Ok(Self {
            current_kid: key_id(&secret),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding,
            ttl_secs: config.access_token_ttl_secs,
            link_key: Sha256::new()
                .chain_update(b"fahwa report links\0")
                .chain_update(secret.as_bytes())
                .finalize()
                .into(),
        })
    }

    /// The key that signs links to report files.
    pub fn link_key(&self) -> &[u8; 32] {
        &self.link_key
    }

    pub fn issue(&self, member: &MemberClaims) -> anyhow::Result<IssuedToken> {
        let now = Utc::now();
        let exp = now.timestamp() + self.ttl_secs as i64;
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: member.member_id,
            tid: member.tenant_id,
            role: member.role,
            op: member.operator,
            fam: member.family_id,
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current_kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(IssuedToken {
            token,
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or(now),
        })
    }

    /// Checks signature, algorithm, key id, issuer, audience and time; says why it refuses.
    pub fn verify(&self, token: &str) -> Result<MemberClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed access token")?;
        if header.alg != Algorithm::HS256 {
            return Err("access token uses a disallowed algorithm".into());
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or("access token was signed with an unknown key")?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "access token has expired",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    "access token is not valid yet"
                }
                _ => "invalid access token",
            }
            .to_string()
        })?;
        let c = data.claims;
        // Correctly signed but made to live longer than this server issues: not ours to trust
        // (a leaked key must not mint tokens that outlive its rotation).
        if c.exp.saturating_sub(c.iat) > self.ttl_secs as i64 {
            return Err("access token lives longer than this server issues them".into());
        }
        Ok(MemberClaims {
            member_id: c.sub,
            tenant_id: c.tid,
            role: c.role,
            operator: c.op,
            family_id: c.fam,
            expires_at: DateTime::from_timestamp(c.exp, 0).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys(secret: &str) -> TokenKeys {
        let config = Config {
            jwt_secret: Some(secret.into()),
            ..Config::default()
        };
        TokenKeys::from_config(&config).unwrap()
    }

    fn member() -> MemberClaims {
        MemberClaims {
            member_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            role: Role::Admin,
            operator: false,
            family_id: Uuid::new_v4(),
            expires_at: Utc::now(),
        }
    }

    #[test]
    fn round_trips_and_rejects_tampering() {
        let keys = keys(&"k".repeat(40));
        let m = member();
        let issued = keys.issue(&m).unwrap();
        let back = keys.verify(&issued.token).unwrap();
        assert_eq!(back.member_id, m.member_id);
        assert_eq!(back.role, Role::Admin);

        // Flip the role in the payload, keep the signature.
        let parts: Vec<&str> = issued.token.split('.').collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(payload.replace("ADMIN", "OWNER"));
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert!(keys.verify(&tampered).is_err());

        let other = self::keys(&"z".repeat(40));
        assert!(other.verify(&issued.token).is_err());
    }

    #[test]
    fn a_rotation_signs_with_the_new_key_and_verifies_the_old_until_it_is_removed() {
        let (old, new) = ("o".repeat(40), "n".repeat(40));
        let before = keys(&old).issue(&member()).unwrap();
        let rotating = TokenKeys::from_config(&Config {
            jwt_secret: Some(new.clone()),
            jwt_previous_secrets: vec![old.clone()],
            ..Config::default()
        })
        .unwrap();
        assert!(
            rotating.verify(&before.token).is_ok(),
            "old tokens still verify"
        );
        let after = rotating.issue(&member()).unwrap();
        let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
        assert_ne!(
            kid(&after.token),
            kid(&before.token),
            "new tokens name the new key"
        );
        let rotated = keys(&new);
        assert!(rotated.verify(&after.token).is_ok());
        assert!(
            rotated.verify(&before.token).is_err(),
            "the removed key opens nothing"
        );
    }

    #[test]
    fn rejects_alg_none() {
        let keys = keys(&"k".repeat(40));
        let issued = keys.issue(&member()).unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{header}.{payload}.");
        assert!(keys.verify(&unsigned).is_err());
    }

    #[test]
    fn production_refuses_weak_or_missing_keys() {
        for secret in [None, Some("short".to_string())] {
            let config = Config {
                jwt_secret: secret,
                env: Environment::Production,
                ..Config::default()
            };
            assert!(TokenKeys::from_config(&config).is_err());
        }
    }
}
