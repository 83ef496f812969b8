//! Building and running the application: used by `main` and by the integration tests.

use std::{future::Future, sync::Arc, time::Duration};

use leptos::prelude::LeptosOptions;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use crate::{
    config::Config,
    dashboard_port::EnginePort,
    db,
    delivery::dispatcher::Dispatcher,
    http::{self, AppState},
    ingest::{admission, Ingest},
    jobs::{self, Jobs},
    ttl_cache::TtlCache,
};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    delivery: Arc<EnginePort>,
}

impl Application {
    /// Connects to the database and binds the listener; nothing is served until `run`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config).await?;
        Self::build_with_db(config, db).await
    }

    pub async fn build_with_db(config: Config, db: DatabaseConnection) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let leptos_options = LeptosOptions::builder()
            .output_name("webhooks")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(addr)
            .build();
        let delivery = Arc::new(EnginePort::new(&config, db.get_postgres_connection_pool().clone())?);
        crate::secrets::seal_stored_secrets(&db).await?;
        let ingest_pool = db::role_pool(&config, config.ingest_pool_size())?;
        let state = AppState {
            db,
            engine: delivery.clone(),
            ingest_quota: Arc::default(),
            ingest: Arc::new(Ingest::start(ingest_pool, delivery.wakers().clone())),
            ingest_slots: Arc::new(tokio::sync::Semaphore::new(config.ingest_max_in_flight.max(1))),
            admission: Arc::default(),
            api_keys: Arc::new(TtlCache::new(http::CACHE_TTL, http::CACHE_CAPACITY)),
            quotas: Arc::new(TtlCache::new(http::CACHE_TTL, http::CACHE_CAPACITY)),
            config: Arc::new(config),
            live: tokio::sync::broadcast::channel(1024).0,
            leptos_options,
        };
        Ok(Self { listener, state, delivery })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    /// Serves the dashboard and API and runs the workers until `shutdown` resolves.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let workers = tokio::spawn(run_workers(
            self.state.db.clone(),
            self.state.config.clone(),
            self.delivery.clone(),
            wait_for(stop_rx.clone()),
        ));
        self.spawn_http_tasks();
        let router = http::router(self.state);
        tracing::info!(addr = %self.listener.local_addr()?, "listening");
        let server = axum::serve(self.listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .with_graceful_shutdown(wait_for(stop_rx));
        let signal = tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let served = server.await;
        signal.abort();
        workers.await??;
        Ok(served?)
    }

    /// Starts the workers (dispatcher + apalis) in this process, stopping when `shutdown`
    /// resolves; the tests run them beside `run_http_only`.
    pub fn spawn_workers(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<anyhow::Result<()>> {
        tokio::spawn(run_workers(self.state.db.clone(), self.state.config.clone(), self.delivery.clone(), shutdown))
    }

    /// What the HTTP side keeps up to date while it serves: the live log's relay, revoked API
    /// keys, and the admission verdict (unless admission by capacity is off).
    fn spawn_http_tasks(&self) {
        let state = &self.state;
        tokio::spawn(http::live::relay(state.db.get_postgres_connection_pool().clone(), state.live.clone()));
        tokio::spawn(http::api_auth::forget_revoked_keys(state.clone()));
        if !state.config.ingest_admit_by_capacity {
            return;
        }
        let limits = admission::Limits { lag: state.config.ingest_max_lag, floor: state.config.ingest_admit_floor };
        tokio::spawn(admission::watch(state.ingest.pool().clone(), state.admission.clone(), limits));
    }

    /// Serves only the HTTP side, without workers; integration tests drive jobs by hand.
    pub async fn run_http_only(self) -> anyhow::Result<()> {
        self.spawn_http_tasks();
        let router = http::router(self.state);
        Ok(axum::serve(self.listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?)
    }
}

/// Runs the dispatcher and the apalis workers until `shutdown` resolves, then lets
/// in-flight attempts and jobs finish. `serve` and `worker` both run this; any number of
/// processes can run it against one database.
pub async fn run_workers(
    db: DatabaseConnection,
    config: Arc<Config>,
    port: Arc<EnginePort>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One name per process and restart: apalis registers a worker name under a session
    // advisory lock, so a name another process (or another of our pooled connections) still
    // holds would refuse to start.
    let instance = format!("{}-{}", std::process::id(), entity::ids::generate_unprefixed());
    let dispatcher = Arc::new(Dispatcher {
        // Its own connections: an ingest flood or a slow dashboard query can't starve sending.
        pool: db::role_pool(&config, config.dispatch_pool_size())?,
        port,
        schedule: config.retry_schedule.clone(),
        worker_id: instance.clone(),
        lease: config.attempt_timeout * 2 + Duration::from_secs(10),
        concurrency: config.dispatch_concurrency,
        max_uncommitted: usize::from(config.dispatch_max_uncommitted),
        events: Arc::new(jobs::notify::QueueNotifications),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if config.dispatch_concurrency > 0 {
        tokio::spawn(crate::queue_vacuum::run(dispatcher.pool.clone(), config.queue_vacuum, stop_rx.clone()));
    }
    let dispatching = tokio::spawn(dispatcher.supervise(stop_rx.clone()));
    let jobs = Jobs::start(&db, &config, &instance, &stop_rx)?;
    tracing::info!("workers started");
    shutdown.await;
    let _ = stop_tx.send(true);
    jobs.stopped().await;
    let _ = dispatching.await;
    tracing::info!("workers stopped");
    Ok(())
}

async fn wait_for(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not when
/// the future is first polled, so a signal that arrives during startup is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            match term.as_mut() {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        tracing::info!("shutdown signal received");
    }
}
