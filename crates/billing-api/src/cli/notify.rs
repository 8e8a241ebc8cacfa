//! `billing-api notify retry <message id>`: sends a notification again by
//! hand, typically one its endpoint gave up (the organization's history
//! names it).

use std::sync::Arc;

use clap::Subcommand;
use entitlements::Engine;

use super::CommandResult;
use crate::background::notify::Sender;
use crate::settings::Settings;

/// What to do with notifications.
#[derive(Debug, Subcommand)]
pub(super) enum NotifyCommand {
    /// Send a message again, signed as before (receivers dedupe by its id).
    Retry {
        /// The message id (msg_...), as the history's `notify_failed`
        /// note names it.
        message_id: String,
        /// Only to this endpoint (default: every configured one).
        #[arg(long)]
        endpoint: Option<String>,
    },
}

pub(super) async fn run(
    engine: &Engine,
    settings: &Settings,
    command: NotifyCommand,
) -> CommandResult {
    let NotifyCommand::Retry {
        message_id,
        endpoint,
    } = command;
    let outgoing = engine
        .notify_message(&message_id)
        .await?
        .ok_or_else(|| format!("no message has the id {message_id:?}"))?;
    let endpoints: Vec<_> = settings
        .notify
        .endpoints
        .iter()
        .filter(|e| endpoint.as_deref().is_none_or(|name| name == e.name))
        .collect();
    if endpoints.is_empty() {
        return Err(match endpoint {
            Some(name) => format!("no endpoint is named {name:?} in [[notify.endpoints]]"),
            None => "no [[notify.endpoints]] are configured".to_owned(),
        }
        .into());
    }
    let mut refused = 0;
    for settings_of in endpoints {
        let name = settings_of.name.clone();
        let sender = Sender::new(
            engine.clone(),
            settings_of.clone(),
            &settings.notify,
            Arc::default(),
        )?;
        match sender.post(&outgoing).await {
            Ok(()) => println!("{message_id} sent to {name}"),
            Err(error) => {
                eprintln!("{message_id} not sent to {name}: {error}");
                refused += 1;
            }
        }
    }
    match refused {
        0 => Ok(()),
        n => Err(format!("{n} endpoint(s) did not take the message").into()),
    }
}
