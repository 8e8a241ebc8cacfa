//! Asks whether an organization may use a feature, the way a service
//! would on its request path:
//!
//! ```text
//! cargo run -p billing-api &        # the service, development settings
//! cargo run -p entitlements-client --example check -- http://127.0.0.1:8080 dev-read-token acme sso
//! ```

use entitlements_client::Client;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, token, org, feature] = args.as_slice() else {
        return Err("usage: check <base url> <token> <org> <feature>".into());
    };
    let client = Client::new(base, token)?;
    let answer = client.entitlements(org).await?;
    println!(
        "{org} is on {} (version {}): {feature} is {}{}",
        answer.plan,
        answer.version,
        if answer.enabled(feature) { "on" } else { "off" },
        answer
            .limit(feature)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default()
    );
    // Asked again, the answer comes from memory once the feed is followed.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    client.entitlements(org).await?;
    println!("calls to the service: {}", client.calls());
    Ok(())
}
