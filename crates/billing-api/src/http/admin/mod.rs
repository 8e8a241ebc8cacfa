//! The admin console at `/admin`: server-rendered pages for operators,
//! signed in with a token whose scope is `admin` (or `admin:read`, which
//! sees everything and changes nothing). It is HTML, not part of the JSON
//! API, and works without JavaScript.

mod chart;
mod format;
mod pages;
mod session;
mod sign_in;

use sign_in::{sign_in, sign_in_form, sign_out};

use actix_web::http::header::{ContentType, RETRY_AFTER};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{NaiveDateTime, Utc};
use entitlements::Engine;
use entitlements::admin::Session;
use entitlements::grants::GrantRequest;
use entitlements::history::Cursor;
use maud::Markup;
use serde::Deserialize;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::org_id::OrgId;
use crate::http::{mount, serve};

/// Days the overview's chart covers.
const CHART_DAYS: i64 = 30;
/// Rows per page of long lists.
const PAGE: usize = 50;

/// Mounts the console's pages.
pub fn configure(cfg: &mut web::ServiceConfig) {
    serve(cfg, "/admin/signin", &[Method::GET, Method::POST], |r| {
        r.route(web::get().to(sign_in_form))
            .route(web::post().to(sign_in))
    });
    mount(cfg, "/admin/signout", Method::POST, sign_out::<false>);
    mount(
        cfg,
        "/admin/signout/everywhere",
        Method::POST,
        sign_out::<true>,
    );
    mount(cfg, "/admin", Method::GET, overview);
    mount(cfg, "/admin/attention", Method::GET, attention);
    mount(cfg, "/admin/orgs", Method::GET, search);
    mount(cfg, "/admin/orgs/{org_id}", Method::GET, organization);
    mount(cfg, "/admin/orgs/{org_id}/grants", Method::POST, add_grant);
    mount(
        cfg,
        "/admin/orgs/{org_id}/grants/{grant_id}/revoke",
        Method::POST,
        revoke_grant,
    );
    mount(cfg, "/admin/events/{event_id}/replay", Method::POST, replay);
}

/// A page, or the way to one.
type Answer = Result<HttpResponse, HttpResponse>;

/// A rendered page with its status.
fn page(status: StatusCode, title: &str, session: Option<&Session>, body: Markup) -> HttpResponse {
    let html = pages::layout(title, session, Utc::now().timestamp(), body);
    HttpResponse::build(status)
        .content_type(ContentType::html())
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ))
        .body(html.into_string())
}

/// An error as a page: what the API would say, without internals.
fn failure(error: &ApiError, session: Option<&Session>) -> HttpResponse {
    let (status, _, message) = error.report();
    let mut answer = page(
        status,
        "Something went wrong",
        session,
        pages::problem(&message),
    );
    if let Some(secs) = error.retry_after() {
        answer.headers_mut().insert(RETRY_AFTER, secs.into());
    }
    answer
}

/// The signed-in operator, or the answer that sends the browser to sign in.
async fn operator(req: &HttpRequest, state: &AppState) -> Result<Session, HttpResponse> {
    match session::current(req, state).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => Err(session::see_other("/admin/signin").finish()),
        Err(error) => Err(failure(&error, None)),
    }
}

/// The operator allowed to change things with a form that carries
/// `csrf_token`; anyone else is refused with a page saying why.
async fn changer(
    req: &HttpRequest,
    state: &AppState,
    csrf_token: &str,
) -> Result<Session, HttpResponse> {
    let session = operator(req, state).await?;
    let refusal = if !session::csrf_matches(&session, csrf_token) {
        let message =
            "This form is stale or did not come from this console. Reload the page and try again.";
        Some(("wrong CSRF token", message))
    } else if session.read_only {
        let message = "You signed in read-only (admin:read): nothing can be changed.";
        Some(("read-only operator", message))
    } else {
        None
    };
    if let Some((why, message)) = refusal {
        tracing::warn!(
            operator = session.token_name,
            path = req.path(),
            "form refused: {why}"
        );
        let body = pages::problem(message);
        return Err(page(StatusCode::FORBIDDEN, "Refused", Some(&session), body));
    }
    Ok(session)
}

/// The page `answer` comes to, whichever way it went.
async fn console(answer: impl Future<Output = Answer>) -> HttpResponse {
    answer.await.unwrap_or_else(|page| page)
}

/// `body` as the page titled `title`, for the signed-in operator.
fn shown(title: &str, session: &Session, body: Markup) -> HttpResponse {
    page(StatusCode::OK, title, Some(session), body)
}

/// Runs `work` with the engine; a failure is shown as a page.
async fn load<T, F>(
    state: &AppState,
    session: &Session,
    work: impl FnOnce(entitlements::Engine) -> F,
) -> Result<T, HttpResponse>
where
    F: Future<Output = Result<T, entitlements::Error>> + Send + 'static,
    T: Send + 'static,
{
    state.with_engine(work).await.map_err(failed(session))
}

/// Back to the organization's page after a change.
fn back_to(org: &str) -> HttpResponse {
    session::see_other(&pages::org_href(org)).finish()
}

/// An error shown as a page to the signed-in operator.
fn failed(session: &Session) -> impl Fn(ApiError) -> HttpResponse + '_ {
    |error| failure(&error, Some(session))
}

#[derive(Deserialize)]
struct Csrf {
    csrf_token: String,
}

async fn overview(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    console(async {
        let session = operator(&req, &state).await?;
        let endpoints: Vec<String> = state
            .settings
            .notify
            .endpoints
            .iter()
            .map(|e| e.name.clone())
            .collect();
        let (overview, attention, backlog) = load(&state, &session, async move |engine| {
            let overview = engine.overview(CHART_DAYS).await?;
            let attention = engine.attention(10, 0).await?;
            let mut backlog = Vec::new();
            for endpoint in endpoints {
                let waiting = engine.notify_backlog(&endpoint).await?;
                backlog.push((endpoint, waiting));
            }
            Ok((overview, attention, backlog))
        })
        .await?;
        let now = Utc::now().timestamp();
        let first_day = now / 86_400 - CHART_DAYS + 1;
        let chart = chart::events_per_day(&overview.per_day, first_day, CHART_DAYS);
        let body = pages::overview(&overview, chart, &attention, &backlog, now);
        Ok(shown("Overview", &session, body))
    })
    .await
}

#[derive(Deserialize)]
struct PageNumber {
    page: Option<usize>,
}

async fn attention(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PageNumber>,
) -> HttpResponse {
    console(async {
        let session = operator(&req, &state).await?;
        let number = query.page.unwrap_or(1).max(1);
        let offset = (number - 1).saturating_mul(PAGE);
        let (events, more, failures) = load(&state, &session, async move |engine| {
            // One more than shown tells whether another page follows.
            let mut events = engine.attention(PAGE + 1, offset).await?;
            let more = events.len() > PAGE;
            events.truncate(PAGE);
            Ok((events, more, engine.notify_failures(PAGE).await?))
        })
        .await?;
        let body = pages::attention(&events, number, more, &failures, Utc::now().timestamp());
        Ok(shown("Needs attention", &session, body))
    })
    .await
}

#[derive(Deserialize)]
struct Search {
    q: Option<String>,
}

async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<Search>,
) -> HttpResponse {
    console(async {
        let session = operator(&req, &state).await?;
        let text = query.q.as_deref().unwrap_or("").trim().to_owned();
        let wanted = text.clone();
        let found = load(&state, &session, async move |engine| {
            engine.search_orgs(&wanted, PAGE).await
        })
        .await?;
        // One organization named exactly: straight to its page.
        if let [(org, customer)] = found.as_slice()
            && (*org == text || customer.as_deref() == Some(text.as_str()))
        {
            return Ok(back_to(org));
        }
        let title = format!("Organizations matching “{text}”");
        Ok(shown(&title, &session, pages::found(&text, &found)))
    })
    .await
}

#[derive(Deserialize)]
struct Before {
    before: Option<String>,
}

async fn organization(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<Before>,
) -> HttpResponse {
    console(async {
        let session = operator(&req, &state).await?;
        let org = OrgId::parse(&path).map_err(failed(&session))?;
        let before = match &query.before {
            Some(token) => Some(Cursor::decode(token).ok_or_else(|| {
                let error =
                    ApiError::InvalidRequest("before: not a cursor this console made".into());
                failure(&error, Some(&session))
            })?),
            None => None,
        };
        let loaded = load(&state, &session, async move |engine| {
            let view = engine.entitlements(&org).await?;
            let customer = engine.customer_of(&org).await?;
            let subscriptions = engine.subscriptions_of(&org).await?;
            let grants = engine.grants(&org).await?;
            let history = engine.history(&org, before.as_ref(), PAGE).await?;
            let ids: Vec<&str> = history
                .entries
                .iter()
                .filter_map(|entry| match entry {
                    entitlements::history::HistoryEntry::Event(event) => Some(event.id.as_str()),
                    _ => None,
                })
                .collect();
            let payloads = engine.payloads(&ids).await?;
            Ok((view, customer, subscriptions, grants, history, payloads))
        });
        let (view, customer, subscriptions, grants, history, payloads) = loaded.await?;
        let dashboard = if state.settings.livemode() {
            "https://dashboard.stripe.com/"
        } else {
            "https://dashboard.stripe.com/test/"
        };
        let org_page = pages::OrgPage {
            view: &view,
            customer: customer.as_deref(),
            subscriptions: &subscriptions,
            grants: &grants,
            history: &history,
            payloads: &payloads,
            plans: state
                .engine
                .catalog()
                .plans()
                .map(|p| p.name.as_str())
                .collect(),
            dashboard,
            now: Utc::now().timestamp(),
        };
        let title = format!("Organization {}", view.org_id);
        Ok(shown(
            &title,
            &session,
            pages::organization(&org_page, &session),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct NewGrant {
    csrf_token: String,
    plan: String,
    expires: Option<String>,
    reason: Option<String>,
}

async fn add_grant(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<NewGrant>,
) -> HttpResponse {
    console(async {
        let session = changer(&req, &state, &form.csrf_token).await?;
        let org = OrgId::parse(&path).map_err(failed(&session))?;
        let form = form.into_inner();
        let expires_at = match form.expires.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(parse_local(text).map_err(failed(&session))?),
        };
        let request = GrantRequest {
            plan: Some(form.plan),
            features: None,
            quantity: None,
            expires_at,
            reason: form.reason.filter(|r| !r.trim().is_empty()),
        };
        let (by, target) = (session.token_name.clone(), org.clone());
        let grant = async move |engine: Engine| engine.grant(&target, request, &by).await;
        load(&state, &session, grant).await?;
        Ok(back_to(&org))
    })
    .await
}

/// A `datetime-local` value, read as UTC.
fn parse_local(text: &str) -> Result<i64, ApiError> {
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|at| at.and_utc().timestamp())
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!("expires: {text:?} is not a date and time"))
        })
}

async fn revoke_grant(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    form: web::Form<Csrf>,
) -> HttpResponse {
    console(async {
        let session = changer(&req, &state, &form.csrf_token).await?;
        let (org, grant) = path.into_inner();
        let org = OrgId::parse(&org).map_err(failed(&session))?;
        let (by, target) = (session.token_name.clone(), org.clone());
        let revoke = async move |engine: Engine| engine.revoke_grant(&target, &grant, &by).await;
        load(&state, &session, revoke).await?;
        Ok(back_to(&org))
    })
    .await
}

#[derive(Deserialize)]
struct ReplayForm {
    csrf_token: String,
    org_id: String,
}

async fn replay(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    form: web::Form<ReplayForm>,
) -> HttpResponse {
    console(async {
        let session = changer(&req, &state, &form.csrf_token).await?;
        let event = path.into_inner();
        let org = OrgId::parse(&form.org_id).map_err(failed(&session))?;
        tracing::info!(
            operator = session.token_name,
            event_id = event,
            "replay from the console"
        );
        load(&state, &session, async move |engine| {
            engine.replay(&event).await
        })
        .await?;
        Ok(back_to(&org))
    })
    .await
}
