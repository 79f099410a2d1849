//! Stripe webhook signatures, checked exactly as Stripe specifies: the `Stripe-Signature`
//! header carries a timestamp `t` and one or more `v1` signatures, each an HMAC-SHA256 of
//! `"{t}.{payload}"` under an endpoint secret. Any `v1` made with any of the configured
//! secrets is accepted (Stripe sends one per active secret while a secret is rotated), the
//! comparison is constant-time, and the timestamp must lie within the tolerance of now in
//! either direction (a replay of an old delivery, or a clock far ahead, is refused).
//! async-stripe's own check keeps only the last `v1`, so kefu checks for itself.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// How far a signature's timestamp may be from now, in seconds (Stripe's default).
pub const TOLERANCE_SECS: i64 = 300;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    #[error("the Stripe-Signature header is not t=…,v1=…")]
    Malformed,
    #[error("no signature matches the payload")]
    Mismatch,
    #[error("the signature is older than the tolerance")]
    Expired,
    #[error("the signature's timestamp is in the future")]
    FromTheFuture,
}

/// Checks `header` (the `Stripe-Signature` value) against `payload` with any of `secrets`,
/// at `now`. Returns the signed timestamp.
pub fn verify(
    payload: &[u8],
    header: Option<&str>,
    secrets: &[&[u8]],
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(value.parse().map_err(|_| SignatureError::Malformed)?);
            }
            // A v1 that is not hex cannot match; other schemes (v0 test signatures) are
            // ignored, as Stripe's libraries do.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matches = secrets.iter().any(|secret| {
        signatures
            .iter()
            .any(|signature| mac(secret, timestamp, payload).verify_slice(signature).is_ok())
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age = now.timestamp() - timestamp;
    if age > tolerance_secs {
        return Err(SignatureError::Expired);
    }
    if -age > tolerance_secs {
        return Err(SignatureError::FromTheFuture);
    }
    Ok(timestamp)
}

fn mac(secret: &[u8], timestamp: i64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The `v1` signature of `payload` at `timestamp` (what Stripe sends; used by tests and the
/// local Stripe stand-in).
pub fn sign(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
    hex::encode(mac(secret, timestamp, payload).finalize().into_bytes())
}

/// A whole `Stripe-Signature` header value for one secret.
pub fn header(payload: &[u8], secret: &[u8], timestamp: i64) -> String {
    format!("t={timestamp},v1={}", sign(payload, secret, timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const PAYLOAD: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn check(header: &str, secrets: &[&[u8]]) -> Result<i64, SignatureError> {
        verify(PAYLOAD, Some(header), secrets, now(), TOLERANCE_SECS)
    }

    #[test]
    fn a_valid_signature_passes() {
        let t = now().timestamp();
        assert_eq!(check(&header(PAYLOAD, SECRET, t), &[SECRET]), Ok(t));
        // Stripe's own example shape: extra spaces are tolerated, unknown schemes ignored.
        let h = format!("t={t}, v0=abcd, v1={}", sign(PAYLOAD, SECRET, t));
        assert_eq!(check(&h, &[SECRET]), Ok(t));
    }

    #[test]
    fn tampering_is_refused() {
        let t = now().timestamp();
        let h = header(PAYLOAD, SECRET, t);
        let tampered = br#"{"id":"evt_1","type":"invoice.paid "}"#;
        assert_eq!(
            verify(tampered, Some(&h), &[SECRET], now(), TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(check(&h, &[b"whsec_other"]), Err(SignatureError::Mismatch));
        // The timestamp is signed too: moving it breaks the signature.
        let moved = h.replace(&format!("t={t}"), &format!("t={}", t + 1));
        assert_eq!(check(&moved, &[SECRET]), Err(SignatureError::Mismatch));
        let mut bad = sign(PAYLOAD, SECRET, t);
        bad.replace_range(0..1, if bad.starts_with('0') { "1" } else { "0" });
        assert_eq!(check(&format!("t={t},v1={bad}"), &[SECRET]), Err(SignatureError::Mismatch));
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let old = now().timestamp() - TOLERANCE_SECS - 1;
        assert_eq!(check(&header(PAYLOAD, SECRET, old), &[SECRET]), Err(SignatureError::Expired));
        let edge = now().timestamp() - TOLERANCE_SECS;
        assert_eq!(check(&header(PAYLOAD, SECRET, edge), &[SECRET]), Ok(edge));
        let future = now().timestamp() + TOLERANCE_SECS + 1;
        assert_eq!(
            check(&header(PAYLOAD, SECRET, future), &[SECRET]),
            Err(SignatureError::FromTheFuture)
        );
        let near = now().timestamp() + TOLERANCE_SECS;
        assert_eq!(check(&header(PAYLOAD, SECRET, near), &[SECRET]), Ok(near));
    }

    #[test]
    fn any_signature_with_any_secret_passes_during_rotation() {
        let t = now().timestamp();
        let (old, new) = (b"whsec_old".as_slice(), b"whsec_new".as_slice());
        // Stripe signs with both secrets while the old one is still active.
        let both = format!("t={t},v1={},v1={}", sign(PAYLOAD, old, t), sign(PAYLOAD, new, t));
        assert_eq!(check(&both, &[new]), Ok(t), "the second v1 counts, not only the last or first");
        assert_eq!(check(&both, &[old]), Ok(t));
        // kefu configured with both secrets accepts a delivery signed with either.
        assert_eq!(check(&header(PAYLOAD, old, t), &[new, old]), Ok(t));
        assert_eq!(check(&header(PAYLOAD, new, t), &[new, old]), Ok(t));
        let garbage_first = format!("t={t},v1=zz,v1={}", sign(PAYLOAD, new, t));
        assert_eq!(check(&garbage_first, &[new]), Ok(t));
    }

    #[test]
    fn malformed_headers() {
        assert_eq!(
            verify(PAYLOAD, None, &[SECRET], now(), TOLERANCE_SECS),
            Err(SignatureError::Missing)
        );
        for h in ["", "garbage", "t=abc,v1=00", "v1=00", "t=1", "t=1,t=2,v1=00", "t=1,v1=zz"] {
            assert_eq!(check(h, &[SECRET]), Err(SignatureError::Malformed), "{h:?}");
        }
    }
}
