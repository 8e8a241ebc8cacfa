//! Property tests: delivery order and duplicates do not change the result,
//! and hostile input never gets more than a clean 4xx.
//!
//! Each property runs `CASES` generated cases against one real app per
//! backend; each case uses organizations of its own.

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;

const CASES: u32 = 64;
static CASE: AtomicU64 = AtomicU64::new(0);

/// One state of a subscription's history.
#[derive(Debug, Clone)]
struct Step {
    status: &'static str,
    quantity: u64,
    yearly: bool,
    cancel_at_period_end: bool,
}

fn step() -> impl Strategy<Value = Step> {
    let status = prop::sample::select(vec![
        "active",
        "trialing",
        "past_due",
        "incomplete",
        "unpaid",
        "paused",
    ]);
    (status, 1..20u64, any::<bool>(), any::<bool>()).prop_map(
        |(status, quantity, yearly, cancel_at_period_end)| Step {
            status,
            quantity,
            yearly,
            cancel_at_period_end,
        },
    )
}

/// A history (distinct timestamps, ending canceled or not) and a delivery
/// order: every event once, in any order, plus some duplicates.
fn history_and_order() -> impl Strategy<Value = (Vec<Step>, bool, Vec<usize>)> {
    (prop::collection::vec(step(), 1..6), any::<bool>()).prop_flat_map(|(steps, canceled)| {
        let n = steps.len() + usize::from(canceled);
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        let duplicates = prop::collection::vec(0..n, 0..4);
        (Just(steps), Just(canceled), order, duplicates).prop_map(
            |(steps, canceled, mut order, duplicates)| {
                for (i, d) in duplicates.into_iter().enumerate() {
                    order.insert((i * 3) % (order.len() + 1), d);
                }
                (steps, canceled, order)
            },
        )
    })
}

fn events_for(app: &TestApp, org: &str, steps: &[Step], canceled: bool, base: i64) -> Vec<Value> {
    let mut events: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let kind = if i == 0 {
                "customer.subscription.created"
            } else {
                "customer.subscription.updated"
            };
            let mut event = app
                .build_event(kind, org)
                .at(base + 10 * i as i64)
                .quantity(step.quantity)
                .status(step.status);
            if step.yearly {
                event = event.price("price_pro_yearly");
            }
            let mut event = event.build();
            event["data"]["object"]["cancel_at_period_end"] = json!(step.cancel_at_period_end);
            event
        })
        .collect();
    if canceled {
        let created = base + 10 * steps.len() as i64;
        events.push(app.event("customer.subscription.deleted", org, created));
    }
    events
}

/// The parts of an answer that must not depend on delivery order.
fn comparable(mut body: Value) -> Value {
    if let Some(map) = body.as_object_mut() {
        for key in ["org_id", "subscription_id", "version", "updated_at"] {
            map.remove(key);
        }
        // Each organization's subscriptions have ids of their own.
        for source in map
            .get_mut("sources")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            source["id"] = Value::Null;
        }
    }
    body
}

fn run_on(
    backend: Backend,
    property: impl Fn(&TestApp, &tokio::runtime::Runtime, &mut TestRunner),
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let app = runtime.block_on(TestApp::spawn(backend));
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    property(&app, &runtime, &mut runner);
}

fn delivery_order_does_not_matter(backend: Backend) {
    run_on(backend, |app, runtime, runner| {
        let base = chrono::Utc::now().timestamp() - 1_000;
        let result = runner.run(&history_and_order(), |(steps, canceled, order)| {
            let case = CASE.fetch_add(1, Ordering::Relaxed);
            let (in_order, shuffled) = (format!("ordered-{case}"), format!("shuffled-{case}"));
            runtime.block_on(async {
                for event in events_for(app, &in_order, &steps, canceled, base) {
                    prop_assert_eq!(app.deliver(&event).await.0, 200);
                }
                let events = events_for(app, &shuffled, &steps, canceled, base);
                for i in &order {
                    prop_assert_eq!(app.deliver(&events[*i]).await.0, 200);
                }
                let expected = comparable(app.get_entitlements(&in_order).await.1);
                let actual = comparable(app.get_entitlements(&shuffled).await.1);
                prop_assert_eq!(actual, expected);
                Ok::<(), TestCaseError>(())
            })
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    });
}

/// A body that is anything from random bytes to a plausible event with a
/// random object.
fn hostile_body() -> impl Strategy<Value = Vec<u8>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    let json = leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "status",
                    "items",
                    "data",
                    "customer",
                    "metadata",
                    "price",
                    "quantity",
                    "subscription",
                    "parent",
                    "mode"
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let kinds: Vec<&'static str> = entitlements::EventKind::NAMES
        .iter()
        .copied()
        .chain(["customer.created", ""])
        .collect();
    let event = (".{0,10}", prop::sample::select(kinds), any::<i64>(), any::<bool>(), json)
        .prop_map(|(id, kind, created, livemode, object)| {
            json!({"id": format!("evt_{id}"), "type": kind, "created": created, "livemode": livemode,
                   "data": {"object": object}})
            .to_string()
            .into_bytes()
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..256), event]
}

/// Header values HTTP allows: anything from bytes to near-valid signatures.
fn hostile_header() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')];
    prop_oneof![
        prop::collection::vec(byte, 0..60),
        "t=-?[0-9]{0,20},v1=[0-9a-f]{0,64}(,v1=[0-9a-fA-F]{0,66})?(,v0=[a-z]{0,3})?"
            .prop_map(String::into_bytes),
    ]
}

fn hostile_input_gets_a_clean_answer(backend: Backend) {
    run_on(backend, |app, runtime, runner| {
        let secret = "whsec_development_only_do_not_use_in_production";
        let result = runner.run(&(hostile_body(), hostile_header()), |(body, header)| {
            runtime.block_on(async {
                let signed = billing_api::stripe::signature::sign(
                    secret,
                    chrono::Utc::now().timestamp(),
                    &body,
                );
                for signature in [signed.into_bytes(), header] {
                    let response = app
                        .client
                        .post(format!("{}/webhooks/stripe", app.address))
                        .header("Stripe-Signature", signature)
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    prop_assert!(status == 200 || status == 400, "status {}", status);
                }
                Ok::<(), TestCaseError>(())
            })
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    });
}

on_both_backends!(
    blocking: delivery_order_does_not_matter,
    hostile_input_gets_a_clean_answer
);
