//! The follower against a fake service whose timing the test sets: a
//! change that comes while an organization's first answer is being asked
//! for is kept, and a follower that died (its runtime dropped) is started
//! again instead of leaving stale answers served as current. An
//! organization's id is one path segment, and the cache has a bound.

use std::time::{Duration, Instant};

use entitlements_client::Client;
use serde_json::{Value, json};
use wiremock::matchers::{method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// acme's answer at `version`.
fn answer(version: i64) -> Value {
    json!({
        "org_id": "acme", "plan": "pro", "status": "active",
        "features": {"projects": version * 10}, "valid_until": null, "version": version,
    })
}

/// The feed's page of `changes`, then `next`, answered after `delay_ms`.
async fn feed(server: &MockServer, after: Option<&str>, changes: Value, next: &str, delay_ms: u64) {
    let page = ResponseTemplate::new(200)
        .set_body_json(json!({"changes": changes, "next": next}))
        .set_delay(Duration::from_millis(delay_ms));
    let mock = Mock::given(method("GET")).and(path("/v1/changes"));
    match after {
        Some(after) => mock.and(query_param("after", after)).respond_with(page),
        None => mock.and(query_param_is_missing("after")).respond_with(page),
    }
    .mount(server)
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_during_the_first_fetch_is_kept() {
    let server = MockServer::start().await;
    feed(&server, None, json!([]), "0", 0).await;
    let change = json!([{"org_id": "acme", "entitlements": answer(2)}]);
    feed(&server, Some("0"), change, "1", 500).await;
    feed(&server, Some("1"), json!([]), "1", 2_000).await;
    // The first answer is read before the change, and arrives after it.
    Mock::given(method("GET"))
        .and(path("/v1/entitlements/acme"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(answer(1))
                .set_delay(Duration::from_millis(1_500)),
        )
        .mount(&server)
        .await;
    let client = Client::new(&server.uri(), "token").unwrap();
    let first = client.entitlements("acme").await.unwrap();
    let second = client.entitlements("acme").await.unwrap();
    assert!(client.following());
    assert_eq!((first.version, second.version, client.calls()), (2, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_runtime_was_dropped_is_started_again() {
    let server = MockServer::start().await;
    feed(&server, None, json!([]), "0", 0).await;
    feed(&server, Some("0"), json!([]), "0", 200).await;
    Mock::given(method("GET"))
        .and(path("/v1/entitlements/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer(1)))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/entitlements/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer(2)))
        .mount(&server)
        .await;
    let client = Client::new(&server.uri(), "token").unwrap();
    // Another runtime (an actix-web worker, say) asks first, follows the
    // feed, and goes away with its follower.
    let other = client.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            assert_eq!(other.entitlements("acme").await.unwrap().version, 1);
            let deadline = Instant::now() + Duration::from_secs(10);
            while !other.following() {
                assert!(Instant::now() < deadline, "never followed the feed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    })
    .join()
    .unwrap();
    // Version 2 came meanwhile, unseen by a dead follower: it is asked for.
    assert_eq!(client.entitlements("acme").await.unwrap().version, 2);
    assert_eq!(client.calls(), 2);
}

/// `org`'s answer, for any organization.
fn answer_of(org: &str) -> Value {
    let mut answer = answer(1);
    answer["org_id"] = json!(org);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_id_is_one_path_segment() {
    let server = MockServer::start().await;
    feed(&server, None, json!([]), "0", 0).await;
    feed(&server, Some("0"), json!([]), "0", 2_000).await;
    let org = "a b/../c?d#e";
    Mock::given(method("GET"))
        .and(path("/v1/entitlements/a%20b%2F..%2Fc%3Fd%23e"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer_of(org)))
        .expect(1)
        .mount(&server)
        .await;
    let client = Client::new(&server.uri(), "token").unwrap();
    assert_eq!(client.entitlements(org).await.unwrap().org_id, org);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_at_most_its_bound() {
    let server = MockServer::start().await;
    feed(&server, None, json!([]), "0", 0).await;
    feed(&server, Some("0"), json!([]), "0", 2_000).await;
    let orgs = ["acme", "beta", "gamma", "delta"];
    for org in orgs {
        Mock::given(method("GET"))
            .and(path(format!("/v1/entitlements/{org}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(answer_of(org)))
            .mount(&server)
            .await;
    }
    let client = Client::new(&server.uri(), "token")
        .unwrap()
        .with_max_cached(2);
    for org in orgs {
        assert_eq!(client.entitlements(org).await.unwrap().org_id, org);
        assert!(client.cached() <= 2, "{}", client.cached());
    }
    assert_eq!(client.cached(), 2);
}
