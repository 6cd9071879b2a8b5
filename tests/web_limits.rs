//! Abuse limits on the web side, against a real `hotline serve`:
//! - one address that starts calls faster than `[web.limits]` allows gets 429 `rate.limited`
//!   with `Retry-After` on the call routes (while the page and `/healthz` still answer), and is
//!   served again once its block has expired; another address is never affected;
//! - a slowloris client that holds connections open with half-sent requests reaches its
//!   per-address cap, its next connection is closed at once, and the server goes on serving
//!   everyone else;
//! - the demo business systems are not served unless the config enables them.

mod common;
#[path = "web/harness.rs"]
mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use harness::{post_offer, Server};

/// A raw HTTP GET from `local_ip`; the status code, or `None` when the connection is closed
/// without an answer.
fn get_from(local_ip: &str, server: &Server, path: &str) -> Option<u16> {
    let socket = socket2_connect(local_ip, server.port)?;
    let mut stream = socket;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A TCP connection to the server from a chosen loopback address.
fn socket2_connect(local_ip: &str, port: u16) -> Option<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
    let local: SocketAddr = format!("{local_ip}:0").parse().ok()?;
    socket.bind(&local.into()).ok()?;
    let remote: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    socket
        .connect_timeout(&remote.into(), Duration::from_secs(5))
        .ok()?;
    Some(socket.into())
}

#[test]
fn rate_limits_connection_caps_and_the_demo_switch() -> Result<()> {
    let server = Server::start(
        "demo = false\n[web.limits]\ncalls_per_s = 0.01\ncall_burst = 3.0\nblock_s = 3\nmax_connections_per_ip = 8",
    )?;

    // Three call attempts pass the limit (and are refused as bad offers); the fourth is over it.
    for _ in 0..3 {
        let (status, _, body) = post_offer(&server, "", "application/sdp", b"not an offer");
        ensure!(
            status == 400,
            "a bad offer within the limit: {status} {body}"
        );
    }
    let response = ureq::post(&server.url("/api/call"))
        .set("Content-Type", "application/sdp")
        .send_bytes(b"not an offer");
    match response {
        Err(ureq::Error::Status(429, r)) => {
            ensure!(r.header("retry-after").is_some(), "429 without Retry-After");
            let body = r.into_string()?;
            ensure!(body.contains("rate.limited"), "{body}");
        }
        other => anyhow::bail!("expected 429 over the call limit, got {other:?}"),
    }
    // The page and the health check are not call routes; another address is not blocked.
    ensure!(server.health()?["status"] == "ok");
    ensure!(
        get_from("127.0.0.1", &server, "/") == Some(200),
        "the page is served"
    );
    // The block expires.
    std::thread::sleep(Duration::from_secs(4));
    let (status, _, body) = post_offer(&server, "", "application/sdp", b"not an offer");
    ensure!(
        status == 400,
        "served again after the block: {status} {body}"
    );

    // A slowloris client: eight connections with half a request each, held open (once the
    // connections above have closed).
    std::thread::sleep(Duration::from_millis(500));
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut stream =
            socket2_connect("127.0.0.1", server.port).context("a slowloris connection")?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")?;
        held.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    // Its ninth is closed without an answer...
    ensure!(
        get_from("127.0.0.1", &server, "/healthz").is_none(),
        "a connection over the per-address cap was served:\n{}",
        server.log()
    );
    // ...while another address is served, and the log says why once.
    ensure!(
        get_from("127.0.0.2", &server, "/healthz") == Some(200),
        "another client is served while the slowloris holds its connections"
    );
    let log = server.log();
    ensure!(
        log.contains("web connection refused: too many open"),
        "the refusal is logged:\n{log}"
    );
    // Once it lets go, its address is served again.
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    ensure!(get_from("127.0.0.1", &server, "/healthz") == Some(200));

    // The demo systems are off here.
    ensure!(
        get_from("127.0.0.2", &server, "/demo/orders/1001") == Some(404),
        "/demo is not served with demo = false"
    );
    Ok(())
}
