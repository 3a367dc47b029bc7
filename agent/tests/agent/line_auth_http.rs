//! The 回線認証 check over real HTTP, against a tiny server on 127.0.0.1:0.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::FixedOffset;
use fleet_agent::config::LineAuthSettings;
use fleet_agent::probe::line_auth::{check, fetch_page};
use fleet_protocol::report::LineAuthState;

const CONNECTED: &[u8] = include_bytes!("../fixtures/line-auth/connected.html");
const DISCONNECTED_SJIS: &[u8] = include_bytes!("../fixtures/line-auth/disconnected-sjis.html");
const UNRELATED: &[u8] = include_bytes!("../fixtures/line-auth/unrelated.html");

/// Serves one connection: reads the request head, then answers with `response`
/// (or, when `None`, holds the connection open without answering for `hold`).
fn serve_once(response: Option<Vec<u8>>, hold: Duration) -> (String, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n")
            && stream.read(&mut byte).map(|n| n == 1).unwrap_or(false)
        {
            head.push(byte[0]);
        }
        match response {
            Some(bytes) => {
                let _ = stream.write_all(&bytes);
            }
            None => std::thread::sleep(hold),
        }
        String::from_utf8_lossy(&head).into_owned()
    });
    (url, handle)
}

fn http(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

fn settings(url: String, timeout: Duration) -> LineAuthSettings {
    LineAuthSettings {
        url,
        timeout,
        ca_file: None,
        tls_verify: true,
    }
}

fn jst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).unwrap()
}

#[test]
fn connected_page_over_http() {
    let (url, server) = serve_once(
        Some(http("200 OK", "text/html; charset=UTF-8", CONNECTED)),
        Duration::ZERO,
    );
    let result = check(&settings(url, Duration::from_secs(5)), jst());
    assert_eq!(result.state, LineAuthState::Connected);
    assert!(result.checked_at.is_some());
    let request = server.join().unwrap();
    assert!(request.starts_with("GET / HTTP/1.1\r\n"), "{request}");
    assert!(
        request.contains("fleet-agent/"),
        "identifies itself: {request}"
    );
}

#[test]
fn disconnected_shift_jis_page_over_http() {
    let (url, server) = serve_once(
        Some(http(
            "200 OK",
            "text/html; charset=Shift_JIS",
            DISCONNECTED_SJIS,
        )),
        Duration::ZERO,
    );
    assert_eq!(
        check(&settings(url, Duration::from_secs(5)), jst()).state,
        LineAuthState::Disconnected
    );
    server.join().unwrap();
}

#[test]
fn unrelated_page_and_error_status_are_unreachable() {
    let (url, server) = serve_once(Some(http("200 OK", "text/html", UNRELATED)), Duration::ZERO);
    assert_eq!(
        check(&settings(url, Duration::from_secs(5)), jst()).state,
        LineAuthState::Unreachable
    );
    server.join().unwrap();

    // Even a page that *says* connected does not count when served as an error.
    let (url, server) = serve_once(
        Some(http("503 Service Unavailable", "text/html", CONNECTED)),
        Duration::ZERO,
    );
    let settings = settings(url, Duration::from_secs(5));
    assert_eq!(
        fetch_page(&settings).unwrap_err(),
        "HTTP status 503 Service Unavailable"
    );
    server.join().unwrap();
}

#[test]
fn a_silent_server_times_out_quickly() {
    let (url, server) = serve_once(None, Duration::from_secs(4));
    let started = Instant::now();
    let settings = settings(url, Duration::from_millis(300));
    let err = fetch_page(&settings).unwrap_err();
    let took = started.elapsed();
    assert!(err.contains("timed out"), "{err}");
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} for a 300 ms timeout"
    );
    server.join().unwrap();
}

#[test]
fn nobody_listening_is_unreachable() {
    // Bind and drop: the port is very likely free and refuses connections.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let result = check(
        &settings(format!("http://127.0.0.1:{port}/"), Duration::from_secs(5)),
        jst(),
    );
    assert_eq!(result.state, LineAuthState::Unreachable);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn https_to_a_plain_http_server_is_unreachable() {
    let (url, server) = serve_once(Some(http("200 OK", "text/html", CONNECTED)), Duration::ZERO);
    let url = url.replace("http://", "https://");
    assert_eq!(
        check(&settings(url, Duration::from_secs(2)), jst()).state,
        LineAuthState::Unreachable
    );
    let _ = server.join();
}

#[test]
fn file_urls_read_saved_pages() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/line-auth/disconnected.html"
    );
    let result = check(
        &settings(format!("file://{path}"), Duration::from_secs(1)),
        jst(),
    );
    assert_eq!(result.state, LineAuthState::Disconnected);
    let missing = check(
        &settings(
            "file:///nonexistent/page.html".into(),
            Duration::from_secs(1),
        ),
        jst(),
    );
    assert_eq!(missing.state, LineAuthState::Unreachable);
}
