//! Organization ids: short opaque strings chosen by the SaaS.

/// What a valid organization id looks like, for error messages.
pub const ORG_ID_RULE: &str = "1 to 128 characters of letters, digits and - _ . : @";

/// [`ORG_ID_RULE`] as a regular expression, for API descriptions.
pub const ORG_ID_PATTERN: &str = "^[A-Za-z0-9_.:@-]{1,128}$";

/// Whether `org_id` is a valid organization id ([`ORG_ID_RULE`]), wherever
/// it comes from: the API or a webhook's metadata.
pub fn is_valid_org_id(org_id: &str) -> bool {
    !org_id.is_empty()
        && org_id.len() <= 128
        && org_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
}

/// `org_id` if it is valid, else the message that says why not.
pub fn valid_org_id(org_id: &str) -> Result<&str, String> {
    if is_valid_org_id(org_id) {
        Ok(org_id)
    } else {
        Err(format!("org_id: {ORG_ID_RULE}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_are_short_and_plain() {
        for valid in ["acme", "org_1", "a.b-c:d@e", &"x".repeat(128)] {
            assert!(is_valid_org_id(valid), "{valid}");
        }
        for invalid in ["", "a b", "acme/1", "<script>", "é", &"x".repeat(129)] {
            assert!(!is_valid_org_id(invalid), "{invalid}");
        }
    }
}
