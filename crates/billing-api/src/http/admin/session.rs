//! Operators' sessions: signing in with a token, the cookie, the CSRF
//! token every changing form carries, signing out.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieAge};
use actix_web::{HttpRequest, HttpResponse, http::header};
use entitlements::admin::Session;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::AppState;
use crate::http::auth::AdminAccess;
use crate::http::error::ApiError;

/// The cookie holding the session id.
pub(crate) const COOKIE: &str = "billing_admin";

/// The signed-in operator of a request, if any, with what their token may
/// do now: a session whose token was removed, replaced or lost both admin
/// scopes is ended here.
pub(crate) async fn current(
    req: &HttpRequest,
    state: &AppState,
) -> Result<Option<Session>, ApiError> {
    let Some(cookie) = req.cookie(COOKIE) else {
        return Ok(None);
    };
    let digest = digest(cookie.value());
    let found = state
        .with_engine(async move |engine| engine.session(&digest).await)
        .await?;
    let Some(mut session) = found else {
        return Ok(None);
    };
    match state
        .tokens
        .admin_access_now(&session.token_name, &session.token_fingerprint)
    {
        Some(read_only) => {
            session.read_only = read_only;
            Ok(Some(session))
        }
        None => {
            tracing::info!(
                operator = session.token_name,
                "session ended: its token is gone or no longer has an admin scope"
            );
            let digest = session.id_digest;
            state
                .with_engine(async move |engine| engine.close_session(&digest).await)
                .await?;
            Ok(None)
        }
    }
}

/// Starts a session for the token's holder; the answer sets its cookie
/// and goes to the overview.
pub(crate) async fn open(
    req: &HttpRequest,
    state: &AppState,
    access: AdminAccess,
) -> Result<HttpResponse, ApiError> {
    // At least a minute, so that a sign-in can ever be used.
    let lifetime = i64::try_from(state.settings.auth.admin_session_secs)
        .unwrap_or(i64::MAX / 2)
        .max(60);
    let id = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let (name, read_only) = (access.name.clone(), access.read_only);
    let session = Session {
        id_digest: digest(&id),
        token_name: access.name,
        read_only,
        csrf_token: uuid::Uuid::new_v4().simple().to_string(),
        expires_at: chrono::Utc::now().timestamp() + lifetime,
        token_fingerprint: access.fingerprint,
    };
    state
        .with_engine(async move |engine| engine.open_session(&session).await)
        .await?;
    tracing::info!(operator = name, read_only, "operator signed in");
    let cookie = Cookie::build(COOKIE, id)
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.auth.secure_cookie || req.connection_info().scheme() == "https")
        .max_age(CookieAge::seconds(lifetime))
        .finish();
    Ok(see_other("/admin").cookie(cookie).finish())
}

/// Ends the session, or with `everywhere` every session of its token (in
/// every browser); the answer clears the cookie and goes to sign-in.
pub(crate) async fn close(
    state: &AppState,
    session: &Session,
    everywhere: bool,
) -> Result<HttpResponse, ApiError> {
    let (digest, name) = (session.id_digest.clone(), session.token_name.clone());
    let ended = state
        .with_engine(async move |engine| match everywhere {
            true => engine.close_sessions_of(&name).await,
            false => engine.close_session(&digest).await.map(|()| 1),
        })
        .await?;
    tracing::info!(operator = session.token_name, ended, "operator signed out");
    let mut gone = Cookie::build(COOKIE, "").path("/admin").finish();
    gone.make_removal();
    Ok(see_other("/admin/signin").cookie(gone).finish())
}

/// Whether a form's CSRF token is the session's.
pub(crate) fn csrf_matches(session: &Session, presented: &str) -> bool {
    bool::from(session.csrf_token.as_bytes().ct_eq(presented.as_bytes()))
}

/// A `303 See Other` to `location`.
pub(crate) fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::SeeOther();
    builder.insert_header((header::LOCATION, location));
    builder
}

fn digest(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}
