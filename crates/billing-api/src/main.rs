//! `billing-api`: see `billing-api --help`.

use std::process::ExitCode;

use billing_api::cli::Cli;
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    Cli::parse().run(billing_api::startup::serve).await
}
