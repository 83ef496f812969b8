//! A fast HTTPS receiver on loopback with its own CA (rcgen), reached as `localhost` (so the
//! server resolves a name, as in production): it records the endpoint and `webhook-id` of
//! every request and answers 200, or 500 for a configured share at random, or 503 to
//! everything during an outage.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
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
    /// Answer 503 to everything.
    outage: Arc<AtomicBool>,
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
            outage: Arc::default(),
            ok: Arc::default(),
        };
        let app = Router::new()
            .route("/e/{endpoint}", post(receive).get(|| async { "bench receiver" }))
            .with_state(shared.clone());
        // `localhost` may also resolve to ::1 (not on this machine's /etc/hosts, but on many):
        // listen there too on the same port when the host has IPv6 loopback.
        let v6 = TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))).await.ok();
        for listener in std::iter::once(listener).chain(v6) {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(serve(listener, acceptor, app));
        }
        Ok(Receiver { addr, ca_pem, shared })
    }

    pub fn url(&self, endpoint: u32) -> String {
        format!("https://localhost:{}/e/{endpoint}", self.addr.port())
    }

    /// While on, every request is answered 503 (and recorded as a failed attempt).
    pub fn set_outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::Relaxed);
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

async fn serve(listener: TcpListener, acceptor: TlsAcceptor, app: Router) {
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
}

async fn receive(State(shared): State<Shared>, Path(endpoint): Path<u32>, headers: HeaderMap) -> StatusCode {
    let at = Instant::now();
    let outage = shared.outage.load(Ordering::Relaxed);
    let fail = outage || rand::random::<u32>() % 1000 < shared.fail_per_mille.load(Ordering::Relaxed);
    let webhook_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let shard = (endpoint as usize) % SHARDS;
    shared.shards[shard].lock().unwrap().push(Receipt { endpoint, webhook_id, at, ok: !fail });
    if !fail {
        shared.ok.fetch_add(1, Ordering::Relaxed);
    }
    if outage {
        StatusCode::SERVICE_UNAVAILABLE
    } else if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The receiver through its `localhost` URL, as the server reaches it: 200 normally, 503
    /// to everything during an outage, every request recorded.
    #[tokio::test]
    async fn answers_by_name_and_fails_everything_during_an_outage() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = std::env::temp_dir().join(format!("bench-receiver-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let receiver = Receiver::start(&dir).await.unwrap();
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&receiver.ca_pem).unwrap()).unwrap();
        let client = reqwest::Client::builder().tls_certs_only([ca]).build().unwrap();
        let url = receiver.url(7);
        assert!(url.starts_with("https://localhost:"), "{url}");
        let post = |id: &'static str| client.post(&url).header("webhook-id", id).body("{}").send();
        assert_eq!(post("evt_1").await.unwrap().status(), 200);
        receiver.set_outage(true);
        assert_eq!(post("evt_2").await.unwrap().status(), 503);
        receiver.set_outage(false);
        assert_eq!(post("evt_3").await.unwrap().status(), 200);
        let receipts = receiver.take();
        let seen: Vec<(u32, &str, bool)> = receipts.iter().map(|r| (r.endpoint, r.webhook_id.as_str(), r.ok)).collect();
        assert_eq!(seen, vec![(7, "evt_1", true), (7, "evt_2", false), (7, "evt_3", true)]);
        assert_eq!(receiver.ok_count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
