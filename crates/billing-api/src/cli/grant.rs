//! `billing-api grant add|list|revoke`: grants by hand from a shell, through
//! the same engine calls as the HTTP routes.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use entitlements::Engine;
use entitlements::grants::GrantRequest;
use entitlements::org::valid_org_id;
use serde_json::Value;

use super::CommandResult;
use crate::wire::{GrantAnswer, GrantList};

/// What to do with grants.
#[derive(Debug, Subcommand)]
pub(super) enum GrantCommand {
    /// Give an organization a plan or features; prints the grant as JSON.
    Add(AddArgs),
    /// Print an organization's grants as JSON, newest first.
    List {
        /// The organization.
        org: String,
    },
    /// Revoke a grant; the record stays for audit.
    Revoke {
        /// The organization.
        org: String,
        /// The grant id (grant_...).
        grant_id: String,
        /// Who revokes it, for the audit trail (default: cli:$USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Args)]
pub(super) struct AddArgs {
    /// The organization.
    org: String,
    /// A catalog plan to grant.
    #[arg(long, conflicts_with = "feature", required_unless_present = "feature")]
    plan: Option<String>,
    /// A feature to grant, as name=value (true, false or a whole number);
    /// repeat for several.
    #[arg(long, value_name = "NAME=VALUE")]
    feature: Vec<String>,
    /// Units of the plan's per-unit features.
    #[arg(long)]
    quantity: Option<i64>,
    /// When it stops granting (RFC 3339, for example 2027-01-31T00:00:00Z).
    #[arg(long, conflicts_with = "days")]
    expires_at: Option<DateTime<Utc>>,
    /// Days from now until it stops granting.
    #[arg(long)]
    days: Option<u32>,
    /// Why, for the audit trail.
    #[arg(long)]
    reason: Option<String>,
    /// Who gives it, for the audit trail (default: cli:$USER).
    #[arg(long)]
    by: Option<String>,
}

/// Runs `command` against `engine`.
pub(super) async fn run(engine: &Engine, command: GrantCommand) -> CommandResult {
    let now = Utc::now();
    match command {
        GrantCommand::Add(args) => {
            let org = valid_org_id(&args.org)?;
            let request = GrantRequest {
                plan: args.plan,
                features: features(&args.feature)?,
                quantity: args.quantity,
                expires_at: match (args.expires_at, args.days) {
                    (Some(at), _) => Some(at.timestamp()),
                    (None, Some(days)) => Some(now.timestamp() + i64::from(days) * 86_400),
                    (None, None) => None,
                },
                reason: args.reason,
            };
            let grant = engine.grant(org, request, &author(args.by)).await?;
            print_json(&GrantAnswer::new(grant, now.timestamp()))
        }
        GrantCommand::List { org } => {
            let grants = engine.grants(valid_org_id(&org)?).await?;
            print_json(&GrantList::new(grants, now.timestamp()))
        }
        GrantCommand::Revoke { org, grant_id, by } => {
            let org = valid_org_id(&org)?;
            engine.revoke_grant(org, &grant_id, &author(by)).await?;
            println!("revoked {grant_id} of {org}");
            Ok(())
        }
    }
}

/// `name=value` pairs as the API's `features` object; `None` when empty.
fn features(pairs: &[String]) -> Result<Option<serde_json::Map<String, Value>>, String> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let parse = |pair: &String| {
        let (name, text) = pair
            .split_once('=')
            .ok_or_else(|| format!("--feature {pair:?}: expected name=value"))?;
        let value = match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            number => number.parse::<i64>().map(Value::from).map_err(|_| {
                format!("--feature {name}: {number:?} is not true, false or a whole number")
            })?,
        };
        Ok((name.to_owned(), value))
    };
    pairs
        .iter()
        .map(parse)
        .collect::<Result<_, String>>()
        .map(Some)
}

/// The audit name: `by`, else `cli:<user>`.
fn author(by: Option<String>) -> String {
    by.unwrap_or_else(|| format!("cli:{}", std::env::var("USER").unwrap_or_default()))
}

fn print_json(value: &impl serde::Serialize) -> CommandResult {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
