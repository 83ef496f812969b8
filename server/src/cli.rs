//! The `webhooks` command line (SPEC §11).

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "webhooks", version, about = "Webhook delivery platform")]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dashboard, API and workers in one process.
    Serve,
    /// Workers only; run several to scale out.
    Worker,
    /// Apply database migrations, then exit.
    Migrate,
    /// Accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Users of an existing account.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Create the demo account if it does not exist; prints its login as JSON.
    SeedDemo,
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account with its owner; prints `{"account_id","user_id","api_key"}`.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        owner_email: String,
        #[arg(long, env = "WEBHOOKS_OWNER_PASSWORD", hide_env_values = true)]
        owner_password: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user to an account; prints `{"user_id"}`.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// owner and admin may change things; member reads only and never sees a secret.
        #[arg(long, value_parser = ["owner", "admin", "member"], default_value = "member")]
        role: String,
        #[arg(long, env = "WEBHOOKS_USER_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an account; prints `{"api_key"}`.
    Create {
        #[arg(long)]
        account: String,
    },
}
