//! A real HTTPS webhook receiver on 127.0.0.1 with a test CA (rcgen), so tests exercise
//! the production TLS path. It records every request and answers with a settable status.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        atomic::{AtomicU16, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::any,
    Router,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use tokio::{net::TcpListener, sync::Notify};
use tokio_rustls::{
    rustls::{
        pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
        ServerConfig,
    },
    TlsAcceptor,
};

pub struct TestCa {
    pub pem_path: PathBuf,
    served: ServedCert,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

/// A certificate chain and its key, as a receiver serves them.
pub struct ServedCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pem: String,
}

/// One CA per test process, written to a file the app trusts through `WEBHOOKS_EXTRA_CA`,
/// with a leaf certificate for `localhost` and 127.0.0.1.
pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Webhooks Test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();

        let dir = std::env::temp_dir().join(format!("webhooks-test-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem_path = dir.join("ca.pem");
        std::fs::write(&pem_path, ca_cert.pem()).unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        leaf.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let served = issue(leaf, &ca_cert, &ca_key);
        TestCa { pem_path, served, ca_cert, ca_key }
    })
}

impl TestCa {
    /// A server certificate from this (trusted) CA, with whatever names and dates a test
    /// gives it.
    pub fn issue(&self, params: CertificateParams) -> ServedCert {
        issue(params, &self.ca_cert, &self.ca_key)
    }
}

fn issue(params: CertificateParams, ca_cert: &rcgen::Certificate, ca_key: &KeyPair) -> ServedCert {
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca_cert, ca_key).unwrap();
    ServedCert { chain: vec![cert.der().clone()], key_pem: key.serialize_pem() }
}

/// A TLS acceptor with the test CA's `localhost` certificate, for purpose-built receivers
/// that speak raw HTTP over TLS (see `hostile.rs`).
pub fn tls_acceptor() -> TlsAcceptor {
    acceptor(&test_ca().served)
}

/// A TLS acceptor serving `cert`.
pub fn acceptor(cert: &ServedCert) -> TlsAcceptor {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let config = ServerConfig::builder().with_no_client_auth().with_single_cert(cert.chain.clone(), key).unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[derive(Debug, Clone)]
pub struct Received {
    pub at: std::time::Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// One scripted answer; when the script is empty the receiver answers `status`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    /// Never answer (the request is recorded first).
    pub hang: bool,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply { status, retry_after: None, hang: false }
    }
}

#[derive(Clone)]
struct Shared {
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    status: Arc<AtomicU16>,
    script: Arc<Mutex<std::collections::VecDeque<Reply>>>,
    body: Arc<Mutex<String>>,
}

pub struct TestReceiver {
    pub addr: SocketAddr,
    shared: Shared,
}

impl TestReceiver {
    pub async fn start() -> TestReceiver {
        TestReceiver::start_with(tls_acceptor()).await
    }

    /// A receiver serving the certificate of `acceptor`.
    pub async fn start_with(acceptor: TlsAcceptor) -> TestReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            received: Arc::default(),
            arrived: Arc::new(Notify::new()),
            status: Arc::new(AtomicU16::new(200)),
            script: Arc::default(),
            body: Arc::new(Mutex::new("{\"received\":true}".to_owned())),
        };
        let app = Router::new().fallback(any(record)).with_state(shared.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
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
        TestReceiver { addr, shared }
    }

    /// `https://localhost:<port>/hook`: a name, so the DNS path of the guard is used too.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.addr.port())
    }

    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// The body of every answer from now on.
    pub fn set_body(&self, body: String) {
        *self.shared.body.lock().unwrap() = body;
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests have arrived; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let wait = async {
            loop {
                let notified = self.shared.arrived.notified();
                let got = self.received();
                if got.len() >= n {
                    return got;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(40), wait)
            .await
            .expect("the receiver did not get the requests in time")
    }
}

async fn record(
    State(shared): State<Shared>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let at = std::time::Instant::now();
    shared.received.lock().unwrap().push(Received { at, path: uri.path().to_owned(), headers, body });
    shared.arrived.notify_waiters();
    let reply = shared.script.lock().unwrap().pop_front();
    let reply = reply.unwrap_or_else(|| Reply::status(shared.status.load(Ordering::SeqCst)));
    if reply.hang {
        std::future::pending::<()>().await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let body = shared.body.lock().unwrap().clone();
    let mut response = (status, body).into_response();
    if let Some(value) = reply.retry_after {
        response.headers_mut().insert("retry-after", value.parse().unwrap());
    }
    response
}
