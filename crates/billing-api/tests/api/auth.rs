//! Bearer tokens and scopes on every `/v1` route.

use serde_json::json;

use crate::helpers::{
    ADMIN_TOKEN, Backend, CHECKOUT_TOKEN, READ_TOKEN, TestApp, assert_error, json_of, now,
};
use crate::on_both_backends;
use billing_api::settings::Scope;
use billing_api::settings::{Settings, TokenSettings};

async fn routes_need_a_token_with_their_scope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = json_of(app.get("/v1/entitlements/acme", token).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("unauthorized")),
            "{token:?}"
        );
        assert_eq!(
            app.post_checkout(&json!({"org_id": "acme", "plan": "pro"}), token)
                .await
                .0,
            401
        );
    }
    for token in [CHECKOUT_TOKEN, ADMIN_TOKEN] {
        let (status, body) = json_of(app.get("/v1/entitlements/acme", Some(token)).await).await;
        assert_error(status, &body, 403, "forbidden");
    }
    for token in [READ_TOKEN, ADMIN_TOKEN] {
        let (status, _) = app
            .post_checkout(&json!({"org_id": "acme", "plan": "pro"}), Some(token))
            .await;
        assert_eq!(status, 403);
    }
    assert_eq!(
        app.get("/v1/entitlements/acme", Some(READ_TOKEN))
            .await
            .status(),
        200
    );
}

async fn the_bearer_scheme_is_matched_in_any_case(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (scheme, status) in [
        ("Bearer", 200),
        ("bearer", 200),
        ("BEARER", 200),
        ("bEaReR", 200),
        ("Basic", 401),
    ] {
        let authorization = format!("{scheme} {READ_TOKEN}");
        let response = app
            .get_with_headers(
                "/v1/entitlements/acme",
                &[("Authorization", &authorization)],
            )
            .await;
        assert_eq!(response.status(), status, "{scheme}");
    }
}

async fn signing_in_to_the_console_forgets_expired_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // A sign-in nobody signed out of, which ended a second ago.
    let ended = entitlements::admin::Session {
        id_digest: "ended".into(),
        token_name: "admin".into(),
        read_only: false,
        csrf_token: "csrf".into(),
        expires_at: now() - 1,
        token_fingerprint: String::new(),
    };
    app.engine.open_session(&ended).await.unwrap();
    assert_eq!(app.db.count_rows("admin_sessions").await, 1);
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/admin/signin", app.address))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(
        app.db.count_rows("admin_sessions").await,
        1,
        "the new session, not the ended one"
    );
}

/// A console client with no redirects followed, so that each answer's
/// `Location` can be read.
fn console_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token`; returns the session's cookie.
async fn sign_in(app: &TestApp, token: &str) -> String {
    let cookie = set_cookie(app, token).await;
    cookie.split(';').next().unwrap().to_owned()
}

/// The `Set-Cookie` header of a sign-in with `token` over plain HTTP.
async fn set_cookie(app: &TestApp, token: &str) -> String {
    let answer = post_form(app, "/admin/signin", "", &format!("token={token}")).await;
    assert_eq!(answer.status(), 303);
    answer.headers()["set-cookie"].to_str().unwrap().to_owned()
}

/// With `auth.secure_cookie` the console's cookie is `Secure` even when
/// the request does not look like HTTPS (a proxy that says nothing).
async fn the_console_cookie_is_secure_when_configured(backend: Backend) {
    let plain = TestApp::spawn(backend).await;
    assert!(!set_cookie(&plain, ADMIN_TOKEN).await.contains("Secure"));
    let secure = TestApp::spawn_with(backend, |s| s.auth.secure_cookie = true).await;
    let cookie = set_cookie(&secure, ADMIN_TOKEN).await;
    assert!(cookie.contains("; Secure"), "{cookie}");
}

/// Posts a form (of URL-safe values) with the session's cookie.
async fn post_form(app: &TestApp, path: &str, cookie: &str, form: &str) -> reqwest::Response {
    console_client()
        .post(format!("{}{path}", app.address))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .await
        .unwrap()
}

/// The console's overview as the session sees it: status, where it
/// sends the browser, the page, and the page's CSRF token.
async fn overview(app: &TestApp, cookie: &str) -> (u16, String, String, String) {
    let answer = console_client()
        .get(format!("{}/admin", app.address))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let location = answer
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let page = answer.text().await.unwrap();
    let csrf = page
        .split(r#"name="csrf_token" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (status, location, page, csrf)
}

/// Settings with one more operator token, `ops`, with these scopes.
fn with_ops_token(settings: &mut Settings, token: &str, scopes: Vec<Scope>) {
    settings.auth.tokens.push(TokenSettings {
        name: "ops".into(),
        token: token.to_owned().into(),
        scopes,
    });
}

async fn a_console_session_follows_its_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        with_ops_token(s, "ops-token-1", vec![Scope::Admin]);
    })
    .await;
    let cookie = sign_in(&app, "ops-token-1").await;
    let (status, _, page, _) = overview(&app, &cookie).await;
    assert_eq!(status, 200);
    assert!(!page.contains("(read-only)"), "{page}");

    // Downgraded to admin:read: the same session may now only look.
    let app = app
        .restart_with(|s| with_ops_token(s, "ops-token-1", vec![Scope::AdminRead]))
        .await;
    let (status, _, page, csrf) = overview(&app, &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("(read-only)"), "{page}");
    let form = format!("csrf_token={csrf}&plan=pro");
    let grant = post_form(&app, "/admin/orgs/acme/grants", &cookie, &form).await;
    assert_eq!(grant.status(), 403);
    assert_eq!(app.db.count_rows("grants").await, 0, "nothing granted");

    // The token replaced under the same name: the session ends.
    let app = app
        .restart_with(|s| with_ops_token(s, "ops-token-2", vec![Scope::Admin]))
        .await;
    let (status, location, ..) = overview(&app, &cookie).await;
    assert_eq!((status, location.as_str()), (303, "/admin/signin"));
    assert_eq!(app.db.count_rows("admin_sessions").await, 0, "ended");

    // Signed in again, then the token removed: ended too.
    let cookie = sign_in(&app, "ops-token-2").await;
    assert_eq!(overview(&app, &cookie).await.0, 200);
    let app = app.restart_with(|_| {}).await;
    let (status, location, ..) = overview(&app, &cookie).await;
    assert_eq!((status, location.as_str()), (303, "/admin/signin"));
    assert_eq!(app.db.count_rows("admin_sessions").await, 0, "ended");
}

async fn signing_out_everywhere_ends_every_session_of_the_token(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        with_ops_token(s, "ops-token-1", vec![Scope::AdminRead]);
    })
    .await;
    let (laptop, phone) = (
        sign_in(&app, ADMIN_TOKEN).await,
        sign_in(&app, ADMIN_TOKEN).await,
    );
    let colleague = sign_in(&app, "ops-token-1").await;
    let (_, _, _, csrf) = overview(&app, &phone).await;
    let form = format!("csrf_token={csrf}");
    let answer = post_form(&app, "/admin/signout/everywhere", &phone, &form).await;
    assert_eq!(answer.status(), 303);
    assert_eq!(answer.headers()["location"], "/admin/signin");
    for cookie in [&laptop, &phone] {
        let (status, location, ..) = overview(&app, cookie).await;
        assert_eq!((status, location.as_str()), (303, "/admin/signin"));
    }
    assert_eq!(overview(&app, &colleague).await.0, 200, "another token's");
    assert_eq!(app.db.count_rows("admin_sessions").await, 1);
}

/// An event id with characters a path must encode is replayed from its
/// organization's page: the form's action names that very event.
async fn the_console_replays_an_event_whose_id_needs_encoding(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut event = app.event("customer.subscription.created", "acme", now());
    let id = "evt_odd id/?#+%";
    event["id"] = json!(id);
    assert_eq!(app.deliver(&event).await.1["outcome"], "applied");
    let cookie = sign_in(&app, ADMIN_TOKEN).await;
    let (_, _, _, csrf) = overview(&app, &cookie).await;
    let org_page = async || {
        let answer = console_client()
            .get(format!("{}/admin/orgs/acme", app.address))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        answer.text().await.unwrap()
    };
    let page = org_page().await;
    let action = page
        .split(r#"form method="post" action=""#)
        .filter_map(|rest| rest.split('"').next())
        .find(|action| action.ends_with("/replay"))
        .expect("a replay form")
        .to_owned();
    assert_eq!(action, "/admin/events/evt_odd%20id%2F%3F%23%2B%25/replay");
    let form = format!("csrf_token={csrf}&org_id=acme");
    let answer = post_form(&app, &action, &cookie, &form).await;
    assert_eq!(answer.status(), 303);
    let page = org_page().await;
    assert!(
        page.contains("entitlements unchanged at version 1"),
        "{page}"
    );
}

/// A bearer-token request from `client` (as its proxy names it).
async fn read_from(app: &TestApp, client: &str, token: &str) -> reqwest::Response {
    let authorization = format!("Bearer {token}");
    app.get_with_headers(
        "/v1/entitlements/acme",
        &[
            ("Authorization", &authorization),
            ("X-Forwarded-For", client),
        ],
    )
    .await
}

/// A console sign-in from `client` (as its proxy names it).
async fn sign_in_from(app: &TestApp, client: &str, token: &str) -> reqwest::Response {
    console_client()
        .post(format!("{}/admin/signin", app.address))
        .header("X-Forwarded-For", client)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap()
}

/// Settings allowing three unknown tokens a minute, per client as the
/// proxy in front names it.
fn three_guesses(settings: &mut Settings) {
    settings.auth.failed_tokens_per_minute = 3;
    settings.auth.trust_forwarded_for = true;
}

async fn an_address_guessing_tokens_is_refused_for_a_while(backend: Backend) {
    let app = TestApp::spawn_with(backend, three_guesses).await;
    let guesser = "192.0.2.1";
    for guess in ["a", "b", "c"] {
        assert_eq!(read_from(&app, guesser, guess).await.status(), 401);
    }
    let refused = read_from(&app, guesser, "d").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // A guess's worth (20 s at 3 a minute) comes back first.
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let (_, body) = json_of(refused).await;
    assert_eq!(body["error"], "too_many_attempts");
    // Refused unchecked: even the right token, and the console's sign-in.
    assert_eq!(read_from(&app, guesser, READ_TOKEN).await.status(), 429);
    let sign_in = sign_in_from(&app, guesser, ADMIN_TOKEN).await;
    assert_eq!(sign_in.status(), 429);
    assert!(sign_in.headers().contains_key("retry-after"));
    // Everyone else goes on as before.
    assert_eq!(read_from(&app, "192.0.2.2", READ_TOKEN).await.status(), 200);
    assert_eq!(read_from(&app, "192.0.2.2", "e").await.status(), 401);
}

async fn console_sign_ins_count_against_the_same_allowance(backend: Backend) {
    let app = TestApp::spawn_with(backend, three_guesses).await;
    let client = "198.51.100.9";
    assert_eq!(sign_in_from(&app, client, "x").await.status(), 401);
    assert_eq!(sign_in_from(&app, client, "y").await.status(), 401);
    assert_eq!(read_from(&app, client, "z").await.status(), 401);
    let refused = sign_in_from(&app, client, ADMIN_TOKEN).await;
    assert_eq!(refused.status(), 429);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("too many unknown tokens")
    );
    // A right token and a missing one are no guesses.
    let other = TestApp::spawn_with(backend, three_guesses).await;
    for _ in 0..5 {
        assert_eq!(
            read_from(&other, "198.51.100.9", READ_TOKEN).await.status(),
            200
        );
        let bare = other
            .get_with_headers(
                "/v1/entitlements/acme",
                &[("X-Forwarded-For", "198.51.100.9")],
            )
            .await;
        assert_eq!(bare.status(), 401);
    }
    assert_eq!(read_from(&other, "198.51.100.9", "x").await.status(), 401);
}

on_both_backends!(
    an_address_guessing_tokens_is_refused_for_a_while,
    console_sign_ins_count_against_the_same_allowance,
    the_console_cookie_is_secure_when_configured,
    the_console_replays_an_event_whose_id_needs_encoding,
    routes_need_a_token_with_their_scope,
    the_bearer_scheme_is_matched_in_any_case,
    signing_in_to_the_console_forgets_expired_sessions,
    a_console_session_follows_its_token,
    signing_out_everywhere_ends_every_session_of_the_token
);
