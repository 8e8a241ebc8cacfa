//! The extractor of a call about one organization (`/v1/orgs/{org_id}/...`
//! and `/v1/entitlements/{org_id}`): who calls, about which organization,
//! and the state to answer with.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use entitlements::Engine;

use crate::http::AppState;
use crate::http::auth::{Authorized, RequiredScope};
use crate::http::error::ApiError;
use crate::http::org_id::OrgId;

/// The caller's token (with scope `S`), checked first, then the path's
/// organization id.
pub(crate) struct OrgCall<S> {
    /// The caller.
    pub(crate) token: Authorized<S>,
    /// The organization of the path.
    pub(crate) org: OrgId,
    /// What every handler shares.
    pub(crate) state: web::Data<AppState>,
}

impl<S: RequiredScope> FromRequest for OrgCall<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let extracted = (|| {
            let token = Authorized::from_request(req, payload).into_inner()?;
            let org = OrgId::from_request(req, payload).into_inner()?;
            let state = req.app_data::<web::Data<AppState>>().cloned();
            let state = state.ok_or_else(|| ApiError::Internal("no state".into()))?;
            Ok(OrgCall { token, org, state })
        })();
        ready(extracted)
    }
}

impl<S> OrgCall<S> {
    /// Runs `work` with the engine and the organization, as
    /// [`AppState::with_engine`] does.
    pub(crate) async fn run<T, F>(
        &self,
        work: impl FnOnce(Engine, OrgId) -> F,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, entitlements::Error>> + Send + 'static,
        T: Send + 'static,
    {
        let org = self.org.clone();
        self.state.with_engine(|engine| work(engine, org)).await
    }
}
