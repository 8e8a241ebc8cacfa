//! Organization ids as handlers receive them: validated where they are
//! extracted (the path or a JSON body), so no handler checks one by hand.

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use entitlements::org::valid_org_id;
use serde::{Deserialize, Deserializer};

use crate::http::error::ApiError;

/// A valid organization id; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgId(Arc<str>);

impl OrgId {
    /// `text` if it is a valid organization id.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        valid_org_id(text)
            .map(|text| Self(text.into()))
            .map_err(ApiError::InvalidRequest)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for OrgId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `{org_id}` segment of the request's path.
impl FromRequest for OrgId {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(OrgId::parse(
            req.match_info().get("org_id").unwrap_or_default(),
        ))
    }
}

/// An `org_id` field of a JSON body.
impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        OrgId::parse(&text).map_err(serde::de::Error::custom)
    }
}
