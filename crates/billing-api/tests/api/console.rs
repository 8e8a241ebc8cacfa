//! The admin console in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver) against the service binary. Sign in,
//! search, open an organization, add a grant and see the feature change,
//! revoke it, replay an event, sign out; a forged form is refused, a
//! value holding HTML shows as text, a read-only operator gets no button.
//! Each page's screenshot is written under `target/console-screenshots/`.
//!
//! It needs `chromedriver` and `chromium` (`CHROMEDRIVER` and `CHROMIUM`
//! name others). Without them the test says so and passes, unless
//! `REQUIRE_BROWSER` is set, as `.ci/run` sets it after installing them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use billing_api::settings::{Settings, Sources};
use billing_api::stripe::trigger::{TriggerSpec, build_event, deliver};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb};
use crate::on_both_backends;

const ADMIN: &str = "console-admin-token";
const VIEWER: &str = "console-viewer-token";
const READER: &str = "console-read-token";

/// chromedriver and chromium, if installed.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(var) {
            return Some(PathBuf::from(path));
        }
        names
            .iter()
            .map(|name| Path::new("/usr/bin").join(name))
            .find(|path| path.exists())
    };
    let found = find("CHROMEDRIVER", &["chromedriver"])
        .zip(find("CHROMIUM", &["chromium", "chromium-browser"]));
    if found.is_none() && std::env::var_os("REQUIRE_BROWSER").is_some() {
        panic!("REQUIRE_BROWSER is set but chromedriver or chromium is missing");
    }
    found
}

/// A process stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver on a port of its own, once it answers.
async fn start_driver(chromedriver: &Path) -> (Running, String) {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{url}/status")).await.is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (Running(child), url)
}

async fn open_browser(driver: &str, chromium: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(driver)
        .await
        .expect("a browser session")
}

/// The service binary on `db`, with an admin, a read-only operator and a
/// reader's token.
fn start_service(db: &TestDb, dir: &Path) -> (Running, String) {
    let config = dir.join("console.toml");
    let tokens = [
        (ADMIN, "support-alice", "admin"),
        (VIEWER, "auditor-bob", "admin:read"),
        (READER, "reader", "entitlements:read"),
    ];
    let text: String = tokens
        .iter()
        .map(|(token, name, scope)| {
            format!(
                "[[auth.tokens]]\nname = \"{name}\"\ntoken = \"{token}\"\nscopes = [\"{scope}\"]\n"
            )
        })
        .collect();
    // Sessions of two hours, so the page says when this one ends.
    let text = format!("[auth]\nadmin_session_secs = 7200\n{text}");
    std::fs::write(&config, text).unwrap();
    let mut command = crate::helpers::service_command(dir, &db.url);
    command
        .args(["--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG");
    let (child, _logs, port) = crate::helpers::spawn_service(command);
    (Running(child), format!("http://127.0.0.1:{port}"))
}

/// Stripe tells the service that `org` subscribed to pro; `unlinked`
/// leaves the subscription without the organization's id. Returns the
/// event's id.
async fn subscribe(base: &str, org: &str, unlinked: bool) -> String {
    let settings = Settings::load(&Sources::from_process(None)).unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut spec = TriggerSpec::new("customer.subscription.created", org, now);
    spec.plan = "pro".into();
    spec.quantity = 3;
    let mut event = build_event(&settings, &spec).unwrap();
    if unlinked {
        event["data"]["object"]["metadata"] = json!({});
        event["data"]["object"]["id"] = json!(format!("sub_unlinked_{org}"));
    }
    let url = format!("{base}/webhooks/stripe");
    deliver(&settings, &url, &event).await.unwrap();
    event["id"].as_str().unwrap().to_owned()
}

async fn entitlements(base: &str, org: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{base}/v1/entitlements/{org}"))
        .bearer_auth(READER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Writes what the browser shows as `<backend>-<name>.png`.
async fn screenshot(browser: &Client, backend: Backend, name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = browser.screenshot().await.unwrap();
    std::fs::write(
        dir.join(format!("{backend:?}-{name}.png").to_lowercase()),
        png,
    )
    .unwrap();
}

async fn path(browser: &Client) -> String {
    browser.current_url().await.unwrap().path().to_owned()
}

/// Types `text` into the field with id `id`.
async fn type_into(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn text(browser: &Client) -> String {
    browser
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sign_in(browser: &Client, base: &str, token: &str) {
    browser.goto(&format!("{base}/admin")).await.unwrap();
    assert!(path(browser).await.ends_with("/admin/signin"));
    type_into(browser, "token", token).await;
    click(browser, "//button[text()='Sign in']").await;
}

/// Clicks what `xpath` finds and waits for the page it leads to: until
/// the old page's root is gone and the new one has a body.
async fn click(browser: &Client, xpath: &str) {
    let old = browser.find(Locator::Css("html")).await.unwrap();
    browser
        .find(Locator::XPath(xpath))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "{xpath} led to no new page");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .wait()
        .for_element(Locator::Css("body"))
        .await
        .unwrap();
}

async fn the_console_works_in_a_real_browser(backend: Backend) {
    let Some((chromedriver, chromium)) = browser() else {
        eprintln!("chromedriver or chromium is missing: the browser test is skipped");
        return;
    };
    let db = TestDb::create(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let (_service, base) = start_service(&db, dir.path());
    let event_id = subscribe(&base, "acme", false).await;
    let unlinked = subscribe(&base, "stray", true).await;
    let (_driver, driver_url) = start_driver(&chromedriver).await;
    let browser = open_browser(&driver_url, &chromium).await;

    // A wrong token is refused plainly.
    sign_in(&browser, &base, "not-a-token").await;
    assert!(
        text(&browser)
            .await
            .contains("That token is not accepted here.")
    );
    screenshot(&browser, backend, "signin-refused").await;

    sign_in(&browser, &base, ADMIN).await;
    assert!(path(&browser).await.ends_with("/admin"));
    let overview = text(&browser).await;
    assert!(overview.contains("Organizations by plan"), "{overview}");
    assert!(
        overview.contains("Signed in as support-alice"),
        "{overview}"
    );
    // Two hours from now, give or take the second it took.
    let ends = ["UTC (in 2 hours)", "UTC (in 1 hour)"];
    assert!(ends.iter().any(|e| overview.contains(e)), "{overview}");
    browser
        .find(Locator::Css("figure.chart svg rect"))
        .await
        .expect("the chart has a bar");
    screenshot(&browser, backend, "overview").await;
    click(&browser, "//a[text()='Needs attention']").await;
    let page = text(&browser).await;
    assert!(
        page.contains(&unlinked) && page.contains("unlinked"),
        "{page}"
    );
    assert!(!page.contains(&event_id), "{page}");
    screenshot(&browser, backend, "attention").await;

    // The session cookie is HttpOnly and SameSite=Strict, and holds no token.
    let cookie = browser.get_named_cookie("billing_admin").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_ne!(cookie.value(), ADMIN);

    // Search finds the organization and opens it.
    type_into(&browser, "search", "acme").await;
    click(&browser, "//button[text()='Find']").await;
    assert!(path(&browser).await.ends_with("/admin/orgs/acme"));
    let page = text(&browser).await;
    assert!(page.contains("Organization acme"), "{page}");
    assert!(page.contains(&event_id), "{page}");
    let link = browser
        .find(Locator::Css(
            "a[href*='dashboard.stripe.com/test/subscriptions/']",
        ))
        .await;
    assert!(
        link.is_ok(),
        "the subscription links to Stripe's test dashboard"
    );
    screenshot(&browser, backend, "organization").await;

    // A grant of the lifetime plan (5 seats) changes the seats at once.
    assert_eq!(entitlements(&base, "acme").await["features"]["seats"], 3);
    browser
        .find(Locator::Id("grant-plan"))
        .await
        .unwrap()
        .select_by_value("lifetime")
        .await
        .unwrap();
    type_into(
        &browser,
        "grant-reason",
        "ticket 4711: SSO while the card is fixed",
    )
    .await;
    click(&browser, "//button[text()='Add grant']").await;
    let page = text(&browser).await;
    assert!(page.contains("ticket 4711"), "{page}");
    assert!(page.contains("active"), "{page}");
    assert_eq!(entitlements(&base, "acme").await["features"]["seats"], 5);
    screenshot(&browser, backend, "organization-granted").await;

    click(&browser, "//button[text()='Revoke']").await;
    let page = text(&browser).await;
    assert!(page.contains("revoked"), "{page}");
    assert_eq!(entitlements(&base, "acme").await["features"]["seats"], 3);

    click(&browser, "//button[text()='Replay']").await;
    let page = text(&browser).await;
    assert!(page.contains("replay: entitlements unchanged"), "{page}");

    // A form whose CSRF token was tampered with is refused.
    browser
        .execute(
            "document.querySelector('#grant-plan').form.csrf_token.value = 'forged';",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "//button[text()='Add grant']").await;
    let page = text(&browser).await;
    assert!(
        page.contains("This form is stale or did not come from this console"),
        "{page}"
    );
    screenshot(&browser, backend, "csrf-refused").await;

    // HTML in what an operator types shows as text, and runs nothing.
    let hostile = "<script>window.pwned=1</script>";
    browser.goto(&format!("{base}/admin")).await.unwrap();
    type_into(&browser, "search", hostile).await;
    click(&browser, "//button[text()='Find']").await;
    assert!(text(&browser).await.contains(hostile));
    let ran = browser
        .execute(
            "return window.pwned === 1 || document.querySelectorAll('main script').length > 0;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(ran, json!(false));
    screenshot(&browser, backend, "escaped").await;

    // Signing out ends the session: the console asks to sign in again.
    click(&browser, "//button[text()='Sign out']").await;
    browser
        .goto(&format!("{base}/admin/orgs/acme"))
        .await
        .unwrap();
    assert!(path(&browser).await.ends_with("/admin/signin"));

    // A read-only operator sees the organization and no way to change it.
    sign_in(&browser, &base, VIEWER).await;
    browser
        .goto(&format!("{base}/admin/orgs/acme"))
        .await
        .unwrap();
    let page = text(&browser).await;
    assert!(page.contains("(read-only)"), "{page}");
    assert!(page.contains(&event_id), "{page}");
    let buttons = browser
        .find_all(Locator::Css("main button, main form"))
        .await
        .unwrap();
    assert!(
        buttons.is_empty(),
        "{} buttons or forms for a read-only operator",
        buttons.len()
    );
    screenshot(&browser, backend, "read-only").await;

    // On a phone's screen the page reflows rather than overflowing.
    browser.set_window_size(390, 844).await.unwrap();
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth > window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(false), "the page is wider than a phone");
    screenshot(&browser, backend, "phone").await;

    browser.close().await.unwrap();
}

on_both_backends!(the_console_works_in_a_real_browser);
