//! `amqps://` for real, without reconfiguring the local broker: each test makes a
//! throwaway CA and a server certificate for 127.0.0.1/localhost, and runs a small
//! TLS-terminating proxy (tokio-rustls, ring) in front of the plain RabbitMQ on
//! 127.0.0.1:5672. The agent connects to the proxy with `amqps://`, so everything it
//! sends crosses a real TLS session that it had to verify; the proxy counts the
//! handshakes it completed and keeps the errors of those that failed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use fleet_agent::publish::PublishError;
use fleet_agent::{Agent, AmqpTarget, Publisher, Settings};
use fleet_protocol::Report;
use lapin::Channel;
use lapin::options::BasicGetOptions;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::helpers::{TempDir, Vhost, fleet_agent, ingest_queue, sample_config};

/// The plain broker behind the proxy.
const BROKER: &str = "127.0.0.1:5672";

/// A CA of its own and a server certificate it signed, both made for one test.
struct TestPki {
    ca_pem: String,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
}

/// A CA that can sign; `name` tells two CAs apart in error messages.
fn test_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

impl TestPki {
    fn new() -> Self {
        let ca = test_ca("fleet-agent test CA");
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server cert");
        Self {
            ca_pem: ca.pem(),
            server_chain: vec![cert.der().clone()],
            server_key: key.into(),
        }
    }
}

/// What the proxy saw.
#[derive(Debug, Default)]
struct ProxyLog {
    /// TLS handshakes completed (then relayed to the broker).
    handshakes: usize,
    /// Why the other handshakes failed, as rustls says it.
    failures: Vec<String>,
}

/// TLS on a port of 127.0.0.1, plain TCP to the broker; stops when dropped.
struct TlsProxy {
    addr: SocketAddr,
    log: Arc<Mutex<ProxyLog>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    async fn start(pki: &TestPki) -> Self {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let log = Arc::new(Mutex::new(ProxyLog::default()));
        let task = tokio::spawn({
            let log = log.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(relay(acceptor.clone(), client, log.clone()));
                }
            }
        });
        Self { addr, log, task }
    }

    fn url(&self, vhost: &Vhost) -> String {
        format!(
            "amqps://guest:guest@127.0.0.1:{}/{}",
            self.addr.port(),
            vhost.name
        )
    }

    fn handshakes(&self) -> usize {
        self.log.lock().unwrap().handshakes
    }

    fn failures(&self) -> Vec<String> {
        self.log.lock().unwrap().failures.clone()
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(acceptor: TlsAcceptor, client: TcpStream, log: Arc<Mutex<ProxyLog>>) {
    let mut tls = match acceptor.accept(client).await {
        Ok(tls) => tls,
        Err(err) => {
            log.lock().unwrap().failures.push(err.to_string());
            return;
        }
    };
    log.lock().unwrap().handshakes += 1;
    let Ok(mut broker) = TcpStream::connect(BROKER).await else {
        return;
    };
    // Ends when either side closes; errors only mean one side went away.
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
}

async fn next_report(channel: &Channel) -> Option<Report> {
    channel
        .basic_get("ingest".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
        .map(|message| Report::parse(&message.delivery.data).expect("a v1 report"))
}

/// The sample terminal's settings pointed at `url`, with `ca_file` if given.
fn settings_text(state: &std::path::Path, url: &str, ca_file: Option<&std::path::Path>) -> String {
    let mut text = sample_config(state, url);
    if let Some(ca_file) = ca_file {
        // Top-level key: it must come before the first table.
        let line = format!("amqp_ca_file = \"{}\"\n", ca_file.display());
        text = text.replacen("state_dir", &format!("{line}state_dir"), 1);
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_publishes_through_tls_when_it_trusts_the_ca_file() {
    let vhost = Vhost::new();
    let (_connection, channel) = ingest_queue(&vhost).await;
    let pki = TestPki::new();
    let proxy = TlsProxy::start(&pki).await;
    let dir = TempDir::new("amqps");
    let ca_file = dir.write("ca.pem", &pki.ca_pem);
    let state = dir.path().join("state");
    let config = dir.write(
        "agent.toml",
        &settings_text(&state, &proxy.url(&vhost), Some(&ca_file)),
    );

    // The real binary, settings file and all; blocking, so off the runtime's threads.
    let config_arg = config.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        fleet_agent(&["run", "--once", "--config", &config_arg])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "run --once over amqps://: {stderr}"
    );
    assert!(
        !stderr.contains("guest:guest"),
        "no password in logs: {stderr}"
    );

    let report = next_report(&channel).await.expect("the report crossed TLS");
    assert_eq!(report.seq, 0);
    assert!(next_report(&channel).await.is_none(), "exactly one report");
    assert_eq!(
        proxy.handshakes(),
        1,
        "one TLS session: {:?}",
        proxy.failures()
    );
    assert!(proxy.failures().is_empty(), "{:?}", proxy.failures());

    // The library path too: `localhost` verifies against the DNS name in the
    // certificate as 127.0.0.1 did against its IP address.
    let url = proxy.url(&vhost).replace("127.0.0.1", "localhost");
    let target = AmqpTarget::parse(&url)
        .unwrap()
        .with_ca_pem(pki.ca_pem.clone());
    let publisher = Publisher::connect(&target)
        .await
        .expect("amqps to localhost");
    let tenant = fleet_protocol::TenantSlug::parse("demo").unwrap();
    publisher
        .publish(&tenant, &report)
        .await
        .expect("confirmed over TLS");
    publisher.close().await;
    assert_eq!(next_report(&channel).await.map(|r| r.seq), Some(0));
    assert_eq!(proxy.handshakes(), 2);
}

/// An untrusted broker certificate: the connection is refused with a message that
/// names the certificate problem, and the report stays in the spool.
async fn refused(ca_pem: Option<String>) -> (PublishError, usize, Vec<String>) {
    let vhost = Vhost::new();
    let (_connection, channel) = ingest_queue(&vhost).await;
    let pki = TestPki::new();
    let proxy = TlsProxy::start(&pki).await;
    let dir = TempDir::new("amqps-refused");
    let state = dir.path().join("state");
    let mut settings = Settings::from_toml(
        &settings_text(&state, &proxy.url(&vhost), None),
        std::path::Path::new("test.toml"),
    )
    .unwrap();
    if let Some(pem) = ca_pem {
        settings.amqp = settings.amqp.clone().with_ca_pem(pem);
    }

    let err = Publisher::connect(&settings.amqp)
        .await
        .err()
        .expect("an untrusted certificate must not connect");
    let mut agent = Agent::new(settings).unwrap();
    agent.collect().await.unwrap();
    assert_eq!(agent.flush().await, 0, "nothing is confirmed");
    assert_eq!(agent.pending(), 1, "the report stays in the spool");
    agent.close().await;
    assert!(
        next_report(&channel).await.is_none(),
        "nothing reached the broker"
    );
    (err, proxy.handshakes(), proxy.failures())
}

fn assert_clear_certificate_error(err: &PublishError) {
    assert!(err.is_connection_lost(), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("certificate") && shown.contains("UnknownIssuer"),
        "the error says why: {shown}"
    );
    assert!(!shown.contains("guest:guest"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_ca_file_the_broker_is_not_trusted_and_the_report_is_kept() {
    let (err, handshakes, failures) = refused(None).await;
    assert_clear_certificate_error(&err);
    assert_eq!(handshakes, 0, "no TLS session was completed");
    assert!(!failures.is_empty(), "the proxy saw the client give up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_says_why_an_untrusted_broker_was_refused() {
    let vhost = Vhost::new();
    let (_connection, channel) = ingest_queue(&vhost).await;
    let pki = TestPki::new();
    let proxy = TlsProxy::start(&pki).await;
    let dir = TempDir::new("amqps-run-refused");
    let state = dir.path().join("state");
    let config = dir.write(
        "agent.toml",
        &settings_text(&state, &proxy.url(&vhost), None),
    );
    let config_arg = config.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        fleet_agent(&["run", "--once", "--config", &config_arg])
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "unconfirmed is a failure: {stderr}"
    );
    assert!(
        stderr.contains("UnknownIssuer"),
        "the log says why: {stderr}"
    );
    assert!(!stderr.contains("guest:guest"), "{stderr}");
    assert!(next_report(&channel).await.is_none());
    assert_eq!(proxy.handshakes(), 0);
    // The report waits in the spool for a broker the agent can trust.
    let settings = Settings::load(&config).unwrap();
    let agent = Agent::new(settings).unwrap();
    assert_eq!(agent.pending(), 1, "kept in the spool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_ca_is_not_trusted_either() {
    let other = test_ca("some other CA").pem();
    let (err, handshakes, failures) = refused(Some(other)).await;
    assert_clear_certificate_error(&err);
    assert_eq!(handshakes, 0, "no TLS session was completed");
    assert!(!failures.is_empty());
}
