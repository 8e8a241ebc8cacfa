//! Bearer tokens with scopes, checked by an extractor.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::settings::{Scope, TokenSettings};

/// The configured tokens, kept as SHA-256 digests so that comparing them
/// takes the same time whatever the presented token.
pub struct Tokens {
    entries: Vec<([u8; 32], String, Vec<Scope>)>,
}

impl Tokens {
    /// Digests the configured tokens.
    pub fn new(tokens: &[TokenSettings]) -> Self {
        let entries = tokens
            .iter()
            .map(|t| {
                (
                    digest(t.token.expose_secret()),
                    t.name.clone(),
                    t.scopes.clone(),
                )
            })
            .collect();
        Self { entries }
    }

    /// Checks a presented token against every configured one, in constant
    /// time, and then for the scope; returns the token's name.
    fn authorize(&self, presented: Option<&str>, scope: Scope) -> Result<&str, ApiError> {
        let presented = digest(presented.ok_or(ApiError::Unauthorized)?);
        let mut found: Option<(&str, &[Scope])> = None;
        for (expected, name, granted) in &self.entries {
            if bool::from(expected.ct_eq(&presented)) {
                found = Some((name, granted));
            }
        }
        match found {
            None => Err(ApiError::Unauthorized),
            Some((name, granted)) if granted.contains(&scope) => Ok(name),
            Some(_) => Err(ApiError::Forbidden(scope.name())),
        }
    }
}

/// What a token may do in the admin console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccess {
    /// The token's configured name.
    pub name: String,
    /// Which token it is (a digest of its digest), kept with a session.
    pub fingerprint: String,
    /// It may only look (`admin:read` without `admin`).
    pub read_only: bool,
}

impl Tokens {
    /// Who may sign in to the admin console with this token.
    pub fn admin_access(&self, presented: &str) -> Option<AdminAccess> {
        let read_only = match self.authorize(Some(presented), Scope::Admin) {
            Ok(_) => false,
            Err(_) => {
                self.authorize(Some(presented), Scope::AdminRead).ok()?;
                true
            }
        };
        let digest = digest(presented);
        let (_, name, _) = self.entries.iter().find(|(d, ..)| *d == digest)?;
        Some(AdminAccess {
            name: name.clone(),
            fingerprint: fingerprint(&digest),
            read_only,
        })
    }

    /// What the token a session signed in with (by name and fingerprint)
    /// may do now: `None` once it is removed, replaced or has neither
    /// admin scope.
    pub fn admin_access_now(&self, name: &str, presented_fingerprint: &str) -> Option<bool> {
        let (_, _, scopes) = self.entries.iter().find(|(digest, entry, _)| {
            entry == name
                && bool::from(
                    fingerprint(digest)
                        .as_bytes()
                        .ct_eq(presented_fingerprint.as_bytes()),
                )
        })?;
        if scopes.contains(&Scope::Admin) {
            Some(false)
        } else {
            scopes.contains(&Scope::AdminRead).then_some(true)
        }
    }
}

/// A token's fingerprint: its digest digested again, so that what the
/// database keeps leads back to neither the token nor its digest.
fn fingerprint(digest: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(digest))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A scope a route requires, as a type.
pub trait RequiredScope {
    /// The scope.
    const SCOPE: Scope;
}

/// Marker for routes that need [`Scope::Checkout`].
pub struct CheckoutScope;
impl RequiredScope for CheckoutScope {
    const SCOPE: Scope = Scope::Checkout;
}

/// Marker for routes that need [`Scope::EntitlementsRead`].
pub struct ReadScope;
impl RequiredScope for ReadScope {
    const SCOPE: Scope = Scope::EntitlementsRead;
}

/// Marker for routes that need [`Scope::Admin`].
pub struct AdminScope;
impl RequiredScope for AdminScope {
    const SCOPE: Scope = Scope::Admin;
}

/// The token of an `Authorization` value in the `Bearer` scheme, whose
/// name is case-insensitive (RFC 6750, RFC 9110).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// [`Tokens::authorize`], refused unchecked while the client's address has
/// presented too many unknown tokens; a missing token is no attempt.
fn authorize_throttled<'a>(
    req: &HttpRequest,
    state: &'a AppState,
    presented: Option<&str>,
    scope: Scope,
) -> Result<&'a str, ApiError> {
    let Some(presented) = presented else {
        return Err(ApiError::Unauthorized);
    };
    state
        .throttle
        .attempt(
            req,
            || state.tokens.authorize(Some(presented), scope),
            |result| matches!(result, Err(ApiError::Unauthorized)),
        )
        .map_err(ApiError::too_many_attempts)?
}

/// Extracting this proves the request carries a token with scope `S`.
pub struct Authorized<S> {
    /// The token's configured name, recorded as the author of changes.
    pub name: String,
    scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => authorize_throttled(req, state, presented, S::SCOPE),
            None => Err(ApiError::Unauthorized),
        };
        ready(result.map(|name| Authorized {
            name: name.to_owned(),
            scope: PhantomData,
        }))
    }
}
