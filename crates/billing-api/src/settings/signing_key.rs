//! Signatures of outbound notifications, per the Standard Webhooks
//! specification, so receivers verify them with its libraries: headers
//! `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature`
//! (`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the
//! base64-decoded part of a `whsec_` secret).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// A secret that signs an endpoint's notifications.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// Reads a `whsec_<base64>` secret; `None` unless it is one.
    pub fn parse(secret: &str) -> Option<Self> {
        let key = STANDARD.decode(secret.strip_prefix("whsec_")?).ok()?;
        (!key.is_empty()).then_some(Self(key))
    }

    /// The `webhook-signature` header of `body` sent as message `id` at
    /// `timestamp` (unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| {
            // HMAC takes keys of any length.
            unreachable!("an HMAC key of any length is accepted")
        });
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's example, which its reference libraries (Python's
    /// `standardwebhooks` among them) sign the same way.
    #[test]
    fn signs_the_specifications_example() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn only_whsec_secrets_with_a_key_are_read() {
        assert!(SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(SigningKey::parse("whsec_").is_none());
        assert!(SigningKey::parse("whsec_not base64!").is_none());
    }
}
