//! The command line: `serve` (default), `migrate`, `check-config`,
//! `trigger`, `reconcile`, `import`, `replay`, `link`, `grant`, `reterm`,
//! `catalog`, `notify`.

mod grant;
mod notify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use entitlements::{Engine, PlanMode, Replay};

use self::grant::GrantCommand;
use self::notify::NotifyCommand;

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::settings::{Settings, Sources};
use crate::stripe::api::StripeApi;
use crate::stripe::import::import;
use crate::stripe::progress::Progress;
use crate::stripe::reconcile::reconcile;
use crate::stripe::trigger::{TriggerSpec, build_event, deliver, trigger_types};

/// Turns Stripe subscriptions into per-organization entitlements.
#[derive(Debug, Parser)]
#[command(name = "billing-api", version)]
pub struct Cli {
    /// A TOML file layered over the built-in and environment files
    /// (also BILLING_CONFIG).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration and exit.
    CheckConfig,
    /// Sign a realistic Stripe event and post it to a running instance.
    Trigger(TriggerArgs),
    /// Read every subscription from Stripe and apply it, repairing what
    /// missed webhooks left behind.
    Reconcile {
        /// Only this organization.
        #[arg(long)]
        org: Option<String>,
        /// Report what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Adopt an existing Stripe account: link every customer whose
    /// metadata or completed checkout names an organization, apply every
    /// subscription, and list the customers left to link by hand.
    Import {
        /// Report what it would link and change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Apply a recorded event again (for example after adding a price to
    /// the catalog).
    Replay {
        /// The event id (evt_...).
        event_id: String,
    },
    /// Link a Stripe customer to an organization by hand: its
    /// subscriptions and its events waiting as unlinked become the
    /// organization's.
    Link {
        /// The organization.
        org_id: String,
        /// The Stripe customer (cus_...).
        customer: String,
    },
    /// Give, list or revoke grants by hand.
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Which catalog answers are computed under.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Give every purchase of a payment plan the terms (features, access
    /// days) the catalog has today. Purchases otherwise keep the terms
    /// they were sold with, whatever the catalog says later.
    Reterm {
        /// The payment plan.
        plan: String,
    },
    /// Send a notification to internal services again.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Put this configuration's catalog (and grace period) in force for
    /// every replica: those with another catalog serve stored answers and
    /// compute none until one with this catalog starts or this is run
    /// with theirs. A replica starting puts its own in force.
    Activate,
}

#[derive(Debug, Args)]
struct TriggerArgs {
    /// The event type, for example customer.subscription.created.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(trigger_types()))]
    event_type: String,
    /// The organization.
    #[arg(long)]
    org: String,
    /// The plan bought.
    #[arg(long, default_value = "pro")]
    plan: String,
    /// Seats.
    #[arg(long, default_value_t = 1)]
    quantity: u64,
    /// The subscription's status, a payment-mode session's
    /// `payment_status` or a dispute's status (default: what the event
    /// type implies).
    #[arg(long)]
    status: Option<String>,
    /// A checkout's mode (default: the plan's).
    #[arg(long, value_parser = ["subscription", "payment"])]
    mode: Option<String>,
    /// The purchase a payment-mode checkout, refund or dispute is about
    /// (default: trigger_<org>).
    #[arg(long)]
    purchase: Option<String>,
    /// Refund part of the charge instead of all of it.
    #[arg(long)]
    partial: bool,
    /// Mark the subscription as ending at its period end.
    #[arg(long)]
    cancel_at_period_end: bool,
    /// Days until the period ends (negative: it already ended).
    #[arg(long, default_value_t = 30, allow_negative_numbers = true)]
    period_days: i64,
    /// The subscription id (default: sub_trigger_<org>).
    #[arg(long)]
    subscription: Option<String>,
    /// The webhook URL (default: the configured server's).
    #[arg(long)]
    url: Option<String>,
}

impl Cli {
    /// Runs the chosen command, `serve` through `serve` (which the
    /// composition root passes in), and returns the process exit code.
    pub async fn run(self, serve: impl AsyncFnOnce(Settings) -> CommandResult) -> ExitCode {
        let settings = match Settings::load(&Sources::from_process(self.config)) {
            Ok(settings) => settings,
            Err(error) => {
                eprintln!("{error}");
                return ExitCode::from(2);
            }
        };
        let result = match self.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::CheckConfig => {
                println!("configuration is valid");
                Ok(())
            }
            Command::Trigger(args) => trigger(settings, args).await,
            Command::Replay { event_id } => replay(settings, &event_id).await,
            Command::Grant { command } => grant(settings, command).await,
            Command::Link { org_id, customer } => link(settings, &org_id, &customer).await,
            Command::Notify { command } => notify_command(settings, command).await,
            Command::Reconcile { org, dry_run } => {
                reconcile_command(settings, org.as_deref(), dry_run).await
            }
            Command::Import { dry_run } => import_command(settings, dry_run).await,
            Command::Reterm { plan } => reterm(settings, &plan).await,
            Command::Catalog {
                command: CatalogCommand::Activate,
            } => activate_catalog(settings).await,
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        }
    }
}

/// What a command ends with.
pub type CommandResult = Result<(), Box<dyn std::error::Error>>;

async fn migrate(settings: Settings) -> CommandResult {
    let applied = settings.engine()?.database().migrate().await?;
    println!("{applied} migration(s) applied");
    Ok(())
}

/// The Stripe API for `command`, which reads from it.
fn stripe_api(settings: &Settings, command: &str) -> Result<StripeApi, Box<dyn std::error::Error>> {
    let key = settings.stripe.secret_key.expose_secret();
    if key.is_empty() {
        return Err(format!(
            "{command} reads from Stripe: set stripe.secret_key (STRIPE_SECRET_KEY)"
        )
        .into());
    }
    let api = StripeApi::new(key, &settings.stripe.api_base, Arc::default())?;
    Ok(api.with_rate_limit(settings.stripe.requests_per_second))
}

async fn import_command(settings: Settings, dry_run: bool) -> CommandResult {
    let api = stripe_api(&settings, "import")?;
    let engine = migrated_engine(&settings).await?;
    let report = import(&engine, &api, dry_run, Progress::on_stderr).await?;
    print!("{report}");
    Ok(())
}

async fn reconcile_command(settings: Settings, org: Option<&str>, dry_run: bool) -> CommandResult {
    let api = stripe_api(&settings, "reconcile")?;
    let engine = migrated_engine(&settings).await?;
    let mut progress = Progress::on_stderr("subscriptions");
    let summary = reconcile(&engine, &api, org, dry_run, &mut progress).await?;
    println!(
        "{}{summary}",
        if dry_run {
            "dry run, nothing changed: "
        } else {
            ""
        }
    );
    Ok(())
}

/// The engine over a database brought up to date.
async fn migrated_engine(settings: &Settings) -> Result<Engine, Box<dyn std::error::Error>> {
    let engine = settings.engine()?;
    engine.database().migrate().await?;
    Ok(engine)
}

async fn notify_command(settings: Settings, command: NotifyCommand) -> CommandResult {
    notify::run(&migrated_engine(&settings).await?, &settings, command).await
}

async fn grant(settings: Settings, command: GrantCommand) -> CommandResult {
    grant::run(&migrated_engine(&settings).await?, command).await
}

async fn link(settings: Settings, org_id: &str, customer: &str) -> CommandResult {
    let org = entitlements::org::valid_org_id(org_id)?;
    let engine = migrated_engine(&settings).await?;
    let linked = engine.link_customer(org, customer, "cli").await?;
    let view = engine.entitlements(org).await?;
    println!(
        "{customer} linked to {org}: {} subscriptions, {} waiting events applied ({}); plan {} ({}), version {}",
        linked.subscriptions,
        linked.events.len(),
        linked.events.join(", "),
        view.plan,
        view.status,
        view.version
    );
    Ok(())
}

async fn activate_catalog(settings: Settings) -> CommandResult {
    let engine = migrated_engine(&settings).await?;
    engine.activate_rules().await?;
    let plans = engine.catalog().plans().count();
    println!(
        "this catalog ({plans} plans) is in force: replicas with another one compute no answers"
    );
    Ok(())
}

async fn reterm(settings: Settings, plan: &str) -> CommandResult {
    let engine = migrated_engine(&settings).await?;
    let (orgs, purchases) = engine.reterm(plan).await?;
    println!(
        "{purchases} purchase(s) of {plan} given today's terms; {orgs} organization(s) recomputed"
    );
    Ok(())
}

async fn replay(settings: Settings, event_id: &str) -> CommandResult {
    let engine = migrated_engine(&settings).await?;
    match engine.replay(event_id).await? {
        Replay::UnknownEvent => Err(format!("no event {event_id} is recorded").into()),
        Replay::NoOrganization => {
            Err(format!("event {event_id} concerns no organization: nothing to recompute").into())
        }
        Replay::Recomputed {
            org_id,
            version,
            change,
        } => {
            match change {
                Some(change) => println!(
                    "{event_id}: recomputed {org_id}: entitlements {} to version {version}",
                    change.as_str()
                ),
                None => println!(
                    "{event_id}: recomputed {org_id}: entitlements unchanged at version {version}"
                ),
            }
            Ok(())
        }
    }
}

async fn trigger(settings: Settings, args: TriggerArgs) -> CommandResult {
    let spec = TriggerSpec {
        event_type: args.event_type,
        org_id: args.org,
        plan: args.plan,
        quantity: args.quantity,
        status: args.status,
        cancel_at_period_end: args.cancel_at_period_end,
        period_days: args.period_days,
        subscription_id: args.subscription,
        mode: args.mode.map(|mode| match mode.as_str() {
            "payment" => PlanMode::Payment,
            _ => PlanMode::Subscription,
        }),
        purchase_id: args.purchase,
        partial_refund: args.partial,
        now: chrono::Utc::now().timestamp(),
    };
    let event = build_event(&settings, &spec)?;
    let url = args.url.unwrap_or_else(|| {
        let host = match settings.server.host.as_str() {
            "0.0.0.0" | "::" => "127.0.0.1",
            host => host,
        };
        format!("http://{host}:{}/webhooks/stripe", settings.server.port)
    });
    let answer = deliver(&settings, &url, &event).await?;
    println!(
        "{} {} -> {answer}",
        spec.event_type,
        event["id"].as_str().unwrap_or_default()
    );
    Ok(())
}
