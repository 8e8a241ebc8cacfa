//! `GET /openapi.json` matches the routes the service really serves.

use serde_json::Value;

use crate::helpers::{Backend, TestApp, json_of};
use crate::on_both_backends;

async fn every_documented_operation_is_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, doc) = json_of(app.get("/openapi.json", None).await).await;
    assert_eq!(status, 200);
    let paths = doc["paths"].as_object().unwrap();
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            operations.push(format!("{} {path}", method.to_uppercase()));
            let url = format!(
                "{}{}",
                app.address,
                path.replace("{org_id}", "acme")
                    .replace("{feature}", "sso")
                    .replace("{grant_id}", "grant_none")
            );
            let request = match method.as_str() {
                "get" => app.client.get(&url),
                "post" => app
                    .client
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body("{}"),
                "delete" => app.client.delete(&url),
                other => panic!("unexpected method {other}"),
            };
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            // An unrouted request gets actix's bare 404; every route of
            // ours answers something else, or a JSON error.
            let ours = status != 404
                || serde_json::from_str::<Value>(&body).is_ok_and(|b| b["error"].is_string());
            assert!(
                ours,
                "{method} {path} is documented but not served ({status})"
            );
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "DELETE /v1/orgs/{org_id}/grants/{grant_id}",
            "GET /healthz",
            "GET /metrics",
            "GET /readyz",
            "GET /v1/changes",
            "GET /v1/entitlements/{org_id}",
            "GET /v1/entitlements/{org_id}/features/{feature}",
            "GET /v1/orgs/{org_id}/grants",
            "GET /v1/orgs/{org_id}/history",
            "POST /v1/checkout/sessions",
            "POST /v1/orgs/{org_id}/customer",
            "POST /v1/orgs/{org_id}/grants",
            "POST /v1/portal/sessions",
            "POST /webhooks/stripe",
        ]
    );
    assert!(doc["components"]["schemas"]["Entitlements"]["properties"]["valid_until"].is_object());

    // The constraints the service enforces are stated.
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["schema"]
            .clone()
    };
    assert_eq!(
        param("/v1/entitlements/{org_id}", "org_id")["pattern"],
        "^[A-Za-z0-9_.:@-]{1,128}$"
    );
    assert_eq!(
        param("/v1/entitlements/{org_id}/features/{feature}", "feature")["enum"],
        serde_json::json!(["projects", "seats", "sso"])
    );
    let limit = param("/v1/orgs/{org_id}/history", "limit");
    assert_eq!(
        (limit["minimum"].as_i64(), limit["maximum"].as_i64()),
        (Some(1), Some(200))
    );
    let checkout = &doc["components"]["schemas"]["CheckoutRequest"];
    assert_eq!(
        checkout["properties"]["plan"]["enum"],
        serde_json::json!(["lifetime", "pass", "pro", null])
    );
    // A plan sold once takes no trial, whether named or bought by price.
    assert_eq!(
        checkout["allOf"][0]["if"]["properties"]["plan"]["enum"],
        serde_json::json!(["lifetime", "pass"])
    );
    assert_eq!(
        checkout["allOf"][1]["if"]["properties"]["price_id"]["enum"],
        serde_json::json!(["price_lifetime", "price_pass_30d"])
    );
    assert_eq!(
        checkout["allOf"][0]["then"]["properties"]["trial_days"]["type"],
        "null"
    );
    assert_eq!(
        checkout["properties"]["success_url"]["pattern"],
        r"^(?:http://localhost:3000)(?:[/?#][\x21-\x7E]*)?$"
    );
    assert_eq!(checkout["oneOf"].as_array().map(Vec::len), Some(2));
    assert_eq!(checkout["additionalProperties"], false);
    let webhook = &doc["paths"]["/webhooks/stripe"]["post"];
    assert_eq!(
        webhook["requestBody"]["content"]["application/json"]["schema"]["required"],
        serde_json::json!(["id", "type"])
    );
    for (path, method) in [
        ("/v1/entitlements/{org_id}", "get"),
        ("/v1/orgs/{org_id}/history", "get"),
        ("/v1/portal/sessions", "post"),
    ] {
        for status in ["401", "403", "429", "503"] {
            assert!(
                doc["paths"][path][method]["responses"][status].is_object(),
                "{method} {path} documents {status}"
            );
        }
    }
    assert_eq!(app.get("/v1/not-a-route", None).await.status(), 404);
}

on_both_backends!(every_documented_operation_is_served);
