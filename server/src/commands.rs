//! One function per CLI subcommand.

use entity::{tables::user, AccountId};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use service::accounts;

use crate::{cli::*, config::Config, db, startup};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Worker => worker(config).await,
        Command::Migrate => {
            db::migrate(&db::connect(&config).await?).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Account { command: AccountCommand::Create { name, owner_email, owner_password } } => {
            let db = db::connect(&config).await?;
            let created = accounts::create_account(&db, &name, &owner_email, &owner_password).await?;
            println!("{}", serde_json::to_string(&created)?);
            Ok(())
        }
        Command::User { command: UserCommand::Create { account, email, role, password } } => {
            let account: AccountId = account.parse()?;
            let role: entity::Role = role.parse().map_err(|_| anyhow::anyhow!("unknown role {role}"))?;
            let db = db::connect(&config).await?;
            let user_id = accounts::add_user(&db, &account, &email, &password, role).await?;
            println!("{}", json!({ "user_id": user_id }));
            Ok(())
        }
        Command::ApiKey { command: ApiKeyCommand::Create { account } } => {
            let account: AccountId = account.parse()?;
            let db = db::connect(&config).await?;
            let api_key = accounts::create_api_key(&db, &account).await?;
            println!("{}", json!({ "api_key": api_key }));
            Ok(())
        }
        Command::SeedDemo => seed_demo(config).await,
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let db = db::connect(&config).await?;
    db::migrate(&db).await?;
    let app = startup::Application::build_with_db(config, db).await?;
    app.run_until(startup::shutdown_signal()).await
}

async fn worker(config: Config) -> anyhow::Result<()> {
    let shutdown = startup::shutdown_signal();
    let db = db::connect(&config).await?;
    db.ping().await?;
    let engine = std::sync::Arc::new(crate::dashboard_port::EnginePort::new(
        &config,
        db.get_postgres_connection_pool().clone(),
    )?);
    if let Some(addr) = config.worker_metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "worker metrics listening");
        let (pool, token) = (db.get_postgres_connection_pool().clone(), config.metrics_token.clone());
        tokio::spawn(crate::http::metrics::serve_alone(listener, pool, token));
    }
    startup::run_workers(db, std::sync::Arc::new(config), engine, shutdown).await
}

pub const DEMO_EMAIL: &str = "demo@example.com";
pub const DEMO_PASSWORD: &str = "demo-password";

/// The local demo login the run command prints. Fixed credentials: it is for a developer's
/// own machine, and the run command says so.
async fn seed_demo(config: Config) -> anyhow::Result<()> {
    let db = db::connect(&config).await?;
    db::migrate(&db).await?;
    let exists = user::Entity::find().filter(user::Column::Email.eq(DEMO_EMAIL)).one(&db).await?;
    let created = match exists {
        Some(_) => false,
        None => {
            accounts::create_account(&db, "Demo Company", DEMO_EMAIL, DEMO_PASSWORD).await?;
            true
        }
    };
    println!("{}", json!({ "email": DEMO_EMAIL, "password": DEMO_PASSWORD, "created": created }));
    Ok(())
}
