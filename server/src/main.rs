use clap::Parser;
use server::{cli::Cli, commands, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest and lettre are built without a default TLS provider (STACK.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    telemetry::init(&cli.config.log_format);
    commands::run(cli).await
}
