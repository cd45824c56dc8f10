//! Deliveries are signed as `docqa-signature: t=<unix seconds>,v1=<hex>`, where
//! v1 is HMAC-SHA256 over `<t>.<body>` with the webhook's secret. A receiver
//! recomputes it, compares in constant time, and refuses a `t` older than its
//! replay window (5 minutes is the usual choice).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "docqa-signature";

/// The header's value for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body)))
}

/// Whether `header` signs `body` with `secret`, at most `tolerance_secs` before
/// `now` (what a receiver does; used by the tests).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else { return false };
    if (now - timestamp).abs() > tolerance_secs {
        return false;
    }
    let expected = mac(secret, timestamp, body);
    signatures.iter().any(|s| {
        use subtle::ConstantTimeEq;
        s.len() == expected.len() && bool::from(s.as_slice().ct_eq(&expected))
    })
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_once_and_only_in_its_window() {
        let body = br#"{"event":"document.ready"}"#;
        let header = sign("s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify("s3cret", &header, body, 1_700_000_100, 300));
        assert!(
            !verify("s3cret", &header, body, 1_700_000_400, 300),
            "outside the replay window"
        );
        assert!(!verify("other", &header, body, 1_700_000_100, 300));
        assert!(!verify("s3cret", &header, b"{}", 1_700_000_100, 300));
        assert!(!verify("s3cret", "v1=00", body, 1_700_000_100, 300));
    }
}
