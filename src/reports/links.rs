//! Signed links to report files: a link names one run of one tenant and when it stops working,
//! and carries an HMAC-SHA256 of exactly that under a key derived from the server's signing
//! secret. Whoever holds a link may download that file until it expires, and nothing else.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The path of a run's download; the query carries tenant, expiry and signature.
pub fn path(run: Uuid) -> String {
    format!("/api/v1/reports/runs/{run}/download")
}

fn mac(key: &[u8; 32], run: Uuid, tenant: Uuid, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("report-run\0{run}\0{tenant}\0{expires}").as_bytes());
    mac
}

/// The full link, under `base` (the server's public URL).
pub fn sign(key: &[u8; 32], base: &str, run: Uuid, tenant: Uuid, expires: DateTime<Utc>) -> String {
    let expires = expires.timestamp();
    let sig = URL_SAFE_NO_PAD.encode(mac(key, run, tenant, expires).finalize().into_bytes());
    format!(
        "{}{}?tenant={tenant}&expires={expires}&sig={sig}",
        base.trim_end_matches('/'),
        path(run)
    )
}

/// Why a link is refused (the client only ever sees 403).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    BadSignature,
    Expired,
}

/// Checks a link's parts; on success the run may be served from the tenant's scope.
pub fn verify(
    key: &[u8; 32],
    run: Uuid,
    tenant: &str,
    expires: &str,
    sig: &str,
    now: DateTime<Utc>,
) -> Result<Uuid, Refused> {
    let tenant: Uuid = tenant.parse().map_err(|_| Refused::Malformed)?;
    let expires: i64 = expires.parse().map_err(|_| Refused::Malformed)?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| Refused::Malformed)?;
    // Constant time: the comparison says nothing about how close a forged signature came.
    mac(key, run, tenant, expires)
        .verify_slice(&sig)
        .map_err(|_| Refused::BadSignature)?;
    if now.timestamp() >= expires {
        return Err(Refused::Expired);
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(link: &str) -> (Uuid, String, String, String) {
        let (path, query) = link.split_once('?').unwrap();
        let run = path.rsplit('/').nth(1).unwrap().parse().unwrap();
        let get = |k: &str| {
            query
                .split('&')
                .find_map(|p| p.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        (run, get("tenant"), get("expires"), get("sig"))
    }

    #[test]
    fn a_link_names_one_run_of_one_tenant_until_it_expires() {
        let key = [7u8; 32];
        let (run, tenant) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let link = sign(
            &key,
            "http://x/",
            run,
            tenant,
            now + chrono::Duration::hours(1),
        );
        assert!(link.starts_with("http://x/api/v1/reports/runs/"));
        let (r, t, e, s) = parts(&link);
        assert_eq!(verify(&key, r, &t, &e, &s, now), Ok(tenant));
        let later = now + chrono::Duration::hours(2);
        assert_eq!(verify(&key, r, &t, &e, &s, later), Err(Refused::Expired));
        let other = Uuid::new_v4();
        assert_eq!(
            verify(&key, other, &t, &e, &s, now),
            Err(Refused::BadSignature)
        );
        let stretched = (e.parse::<i64>().unwrap() + 3600).to_string();
        assert_eq!(
            verify(&key, r, &t, &stretched, &s, now),
            Err(Refused::BadSignature)
        );
        let other_tenant = Uuid::new_v4().to_string();
        assert_eq!(
            verify(&key, r, &other_tenant, &e, &s, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(&[8u8; 32], r, &t, &e, &s, now),
            Err(Refused::BadSignature)
        );
        assert_eq!(
            verify(&key, r, &t, &e, "not base64!", now),
            Err(Refused::Malformed)
        );
    }
}
