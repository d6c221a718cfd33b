//! `Stripe-Signature`, as Stripe documents it: `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`, each
//! `v1` an HMAC-SHA256 of `<t>.<raw body>` under the endpoint's signing secret. Several `v1`
//! are allowed (Stripe sends one per active secret while a secret is rolled); other schemes
//! (`v0`) are ignored; the timestamp must be within a tolerance of now, either way, so that a
//! captured delivery cannot be replayed later. Comparisons are constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Stripe's libraries' default.
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No `t=` or no `v1=`, or unreadable parts.
    Malformed,
    /// Outside the tolerance around now.
    Stale,
    /// No `v1` matches.
    Mismatch,
}

/// Checks `header` for `body` (the raw bytes as received) under `secret` at `now` (unix
/// seconds); on success, the delivery's timestamp.
pub fn verify(
    header: &str,
    body: &[u8],
    secret: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, Refused> {
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value.parse().map_err(|_| Refused::Malformed)?),
            Some(("v1", value)) => {
                // A signature that is not hex cannot match; the others may.
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(Refused::Malformed)?;
    if signatures.is_empty() {
        return Err(Refused::Malformed);
    }
    // `abs_diff`: a timestamp near i64's ends must be stale, not overflow.
    if now.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return Err(Refused::Stale);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = signatures
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok());
    if matched {
        Ok(timestamp)
    } else {
        Err(Refused::Mismatch)
    }
}

/// The header Stripe would send for `body` at `timestamp` (tests and local tools).
pub fn sign(body: &[u8], secret: &[u8], timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_signature_of_the_body_as_received_is_accepted() {
        let header = sign(BODY, SECRET, NOW);
        assert_eq!(
            verify(&header, BODY, SECRET, NOW + 10, TOLERANCE_SECS),
            Ok(NOW)
        );
        // Stripe's documented example shape, with a v0 and a second v1 from a rolled secret.
        let rolled = sign(BODY, b"whsec_old", NOW);
        let old_v1 = rolled.split("v1=").nth(1).unwrap();
        let both = format!(
            "{header},v1={old_v1},v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
        );
        assert_eq!(verify(&both, BODY, SECRET, NOW, TOLERANCE_SECS), Ok(NOW));
        assert_eq!(
            verify(&both, BODY, b"whsec_old", NOW, TOLERANCE_SECS),
            Ok(NOW)
        );
    }

    #[test]
    fn anything_else_is_refused() {
        let header = sign(BODY, SECRET, NOW);
        let altered = br#"{"id":"evt_1","type":"invoice.paid" }"#;
        assert_eq!(
            verify(&header, altered, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(&header, BODY, b"whsec_other", NOW, TOLERANCE_SECS),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify(
                &header,
                BODY,
                SECRET,
                NOW + TOLERANCE_SECS + 1,
                TOLERANCE_SECS
            ),
            Err(Refused::Stale),
            "a replay after the tolerance"
        );
        assert_eq!(
            verify(
                &header,
                BODY,
                SECRET,
                NOW - TOLERANCE_SECS - 1,
                TOLERANCE_SECS
            ),
            Err(Refused::Stale),
            "from too far in the future"
        );
        let moved = header.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
        assert_eq!(
            verify(&moved, BODY, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Mismatch)
        );
        assert_eq!(
            verify("", BODY, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify(&format!("t={NOW}"), BODY, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify("v1=00", BODY, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify("t=x,v1=00", BODY, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify(&format!("t={NOW},v1=zz"), BODY, SECRET, NOW, TOLERANCE_SECS),
            Err(Refused::Malformed),
            "no readable v1"
        );
    }
}
