//! Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=...]`
//! where each `v1` is HMAC-SHA256 of `"<t>.<raw body>"` under a signing
//! secret. Several secrets are accepted so a secret can be rolled.

use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why a signature was refused; each has its own short reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header is not `t=...,v1=...`.
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    /// The timestamp is too far from now.
    #[error("the signature timestamp is outside the tolerance of {0} seconds")]
    OutsideTolerance(i64),
    /// No `v1` value matches any configured secret.
    #[error("no signature matches the payload")]
    Mismatch,
    /// No secret is configured, so nothing can be verified.
    #[error("no webhook signing secret is configured")]
    NoSecret,
}

impl SignatureError {
    /// The machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Malformed(_) => "malformed_signature",
            SignatureError::OutsideTolerance(_) => "signature_expired",
            SignatureError::Mismatch | SignatureError::NoSecret => "invalid_signature",
        }
    }
}

/// Verifies webhook signatures against the configured secrets.
pub struct Verifier {
    secrets: Vec<SecretString>,
    tolerance_secs: i64,
}

impl Verifier {
    /// A verifier accepting any of `secrets` within `tolerance_secs`.
    pub fn new(secrets: Vec<SecretString>, tolerance_secs: u64) -> Self {
        Self {
            secrets,
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
        }
    }

    /// Checks `header` over the raw `body` at time `now` (unix seconds).
    pub fn verify(
        &self,
        header: Option<&[u8]>,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let header =
            std::str::from_utf8(header).map_err(|_| SignatureError::Malformed("not ASCII"))?;
        let mut timestamp = None;
        let mut signatures = Vec::new();
        for part in header.split(',') {
            let Some((key, value)) = part.trim().split_once('=') else {
                return Err(SignatureError::Malformed("expected key=value pairs"));
            };
            match key {
                "t" => {
                    let t = value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed("t is not a unix time"))?;
                    timestamp = Some(t);
                }
                // Only v1 is HMAC-SHA256; other schemes (v0, ...) are ignored.
                "v1" => {
                    if let Ok(bytes) = hex::decode(value) {
                        signatures.push(bytes);
                    }
                }
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
        if signatures.is_empty() {
            return Err(SignatureError::Malformed("no v1= signature"));
        }
        if now.abs_diff(timestamp) > self.tolerance_secs.unsigned_abs() {
            return Err(SignatureError::OutsideTolerance(self.tolerance_secs));
        }
        if self.secrets.is_empty() {
            return Err(SignatureError::NoSecret);
        }
        let mut matched = false;
        for secret in &self.secrets {
            let mac = signed_payload_mac(secret.expose_secret(), timestamp, body);
            for signature in &signatures {
                // verify_slice compares in constant time.
                matched |= mac.clone().verify_slice(signature).is_ok();
            }
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

fn signed_payload_mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Stripe-Signature` header Stripe would send for `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = signed_payload_mac(secret, timestamp, body)
        .finalize()
        .into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently of this code:
    //   printf '%s' '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac 'whsec_test'
    const SECRET: &str = "whsec_test";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1"}"#;
    const EXPECTED: &str = "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925";

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(
            secrets
                .iter()
                .map(|s| SecretString::from(s.to_string()))
                .collect(),
            300,
        )
    }

    fn check(header: &str, now: i64) -> Result<(), SignatureError> {
        verifier(&[SECRET]).verify(Some(header.as_bytes()), BODY, now)
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        #[test]
        fn arbitrary_headers_are_refused_without_panicking(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128),
        ) {
            proptest::prop_assert!(verifier(&[SECRET]).verify(Some(&header), &body, T).is_err());
        }

        #[test]
        fn near_valid_headers_are_refused_without_panicking(header in "t=-?[0-9]{0,20}(,v1=[0-9a-f]{0,70}){0,3}(,[a-z0-9]{0,3}=.{0,5})?") {
            proptest::prop_assert!(verifier(&[SECRET]).verify(Some(header.as_bytes()), BODY, T).is_err());
        }
    }

    #[test]
    fn signing_matches_an_openssl_vector() {
        assert_eq!(sign(SECRET, T, BODY), format!("t={T},v1={EXPECTED}"));
    }

    #[test]
    fn a_valid_signature_is_accepted_among_other_schemes_and_values() {
        assert_eq!(check(&format!("t={T},v1={EXPECTED}"), T), Ok(()));
        assert_eq!(
            check(&format!("t={T},v0=abc,v1=00ff,v1={EXPECTED}"), T + 299),
            Ok(())
        );
    }

    #[test]
    fn any_configured_secret_may_have_signed() {
        let result = verifier(&["whsec_old", SECRET]).verify(
            Some(format!("t={T},v1={EXPECTED}").as_bytes()),
            BODY,
            T,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn each_problem_gets_its_own_reason() {
        assert_eq!(
            verifier(&[SECRET]).verify(None, BODY, T),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            check("garbage", T),
            Err(SignatureError::Malformed("expected key=value pairs"))
        );
        assert_eq!(
            check(&format!("v1={EXPECTED}"), T),
            Err(SignatureError::Malformed("no t= timestamp"))
        );
        assert_eq!(
            check(&format!("t={T}"), T),
            Err(SignatureError::Malformed("no v1= signature"))
        );
        assert_eq!(
            check(&format!("t=soon,v1={EXPECTED}"), T),
            Err(SignatureError::Malformed("t is not a unix time"))
        );
        assert_eq!(
            check(&format!("t={T},v1={EXPECTED}"), T + 301),
            Err(SignatureError::OutsideTolerance(300))
        );
        assert_eq!(
            check(&format!("t={T},v1={EXPECTED}"), T - 301),
            Err(SignatureError::OutsideTolerance(300))
        );
        assert_eq!(
            check(&format!("t={},v1={EXPECTED}", T + 1), T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_body_or_secret_does_not_verify() {
        let header = format!("t={T},v1={EXPECTED}");
        let changed = verifier(&[SECRET]).verify(Some(header.as_bytes()), br#"{"id":"evt_2"}"#, T);
        assert_eq!(changed, Err(SignatureError::Mismatch));
        let other = verifier(&["whsec_other"]).verify(Some(header.as_bytes()), BODY, T);
        assert_eq!(other, Err(SignatureError::Mismatch));
        let none = verifier(&[]).verify(Some(header.as_bytes()), BODY, T);
        assert_eq!(none, Err(SignatureError::NoSecret));
    }
}
