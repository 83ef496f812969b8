//! A fast HTTPS receiver on 127.0.0.1 with its own CA (rcgen): it records the endpoint and
//! `webhook-id` of every request and answers 200, or 500 for a configured share at random.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::post,
    Router,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use tokio::net::TcpListener;
use tokio_rustls::{
    rustls::{pki_types::pem::PemObject, pki_types::PrivateKeyDer, ServerConfig},
    TlsAcceptor,
};

use crate::stats::Receipt;

/// Receipts are kept in shards so that concurrent connections rarely share a lock.
const SHARDS: usize = 16;

#[derive(Clone)]
struct Shared {
    shards: Arc<Vec<Mutex<Vec<Receipt>>>>,
    /// Per mille of requests answered 500.
    fail_per_mille: Arc<AtomicU32>,
    ok: Arc<AtomicU64>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub ca_pem: PathBuf,
    shared: Shared,
}

impl Receiver {
    pub async fn start(dir: &std::path::Path) -> anyhow::Result<Receiver> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Webhooks Bench CA");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()])?;
        leaf.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse()?));
        let leaf_key = KeyPair::generate()?;
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
        let ca_pem = dir.join("bench-ca.pem");
        std::fs::write(&ca_pem, ca_cert.pem())?;

        let key = PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes())?;
        let config =
            ServerConfig::builder().with_no_client_auth().with_single_cert(vec![leaf_cert.der().clone()], key)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Shared {
            shards: Arc::new((0..SHARDS).map(|_| Mutex::new(Vec::new())).collect()),
            fail_per_mille: Arc::default(),
            ok: Arc::default(),
        };
        let app = Router::new()
            .route("/e/{endpoint}", post(receive).get(|| async { "bench receiver" }))
            .with_state(shared.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, ca_pem, shared })
    }

    pub fn url(&self, endpoint: u32) -> String {
        format!("https://127.0.0.1:{}/e/{endpoint}", self.addr.port())
    }

    pub fn set_failure_share(&self, share: f64) {
        self.shared.fail_per_mille.store((share * 1000.0).round() as u32, Ordering::Relaxed);
    }

    /// Everything received since the last call.
    pub fn take(&self) -> Vec<Receipt> {
        let mut all = Vec::new();
        for shard in self.shared.shards.iter() {
            all.append(&mut shard.lock().unwrap());
        }
        all.sort_by_key(|r| r.at);
        all
    }

    /// 2xx answers so far, without taking them.
    pub fn ok_count(&self) -> u64 {
        self.shared.ok.load(Ordering::Relaxed)
    }
}

async fn receive(State(shared): State<Shared>, Path(endpoint): Path<u32>, headers: HeaderMap) -> StatusCode {
    let at = Instant::now();
    let fail = rand::random::<u32>() % 1000 < shared.fail_per_mille.load(Ordering::Relaxed);
    let webhook_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let shard = (endpoint as usize) % SHARDS;
    shared.shards[shard].lock().unwrap().push(Receipt { endpoint, webhook_id, at, ok: !fail });
    if !fail {
        shared.ok.fetch_add(1, Ordering::Relaxed);
    }
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}
