use clap::Parser;
use server::{cli::Cli, commands, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(&cli.config.log_format);
    commands::run(cli).await
}
