//! A SIP flood does not lock out callers. For 20 s a scanner floods hotline's SIP port:
//! - from one address (127.0.0.2), about 600 junk datagrams a second: mutated INVITEs,
//!   garbage, and INVITEs that are never acknowledged;
//! - from 32 more addresses (127.0.1.x), each under the per-source limits, 160 well-formed
//!   INVITEs a second in all that are answered and never acknowledged (a spread flood the
//!   rate limits cannot see).
//!
//! While it goes on, a real SIPp caller (through the NAT relay of `sip_calls.rs`) calls, is
//! recognised and hears the greeting. Afterwards the only call record is the real call's (no
//! INVITE that was never acknowledged becomes a call), the flooding source was blocked (an
//! OPTIONS from it gets no answer) and its block expires (then it does).
//!
//! Also: one address holding many SIP-over-TCP connections gets only its share of them.
//!
//! SIPp's pcap player writes through a raw socket, so this test needs root (CI runs as root).

mod common;

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hotline::InProcessHotline;
use common::pcap::{support_request_pcap, PT_PCMU};
use common::ports::RtpPorts;
use common::records::{final_transcripts, first};
use common::relay::MediaRelay;
use common::sipp::support_caller;

/// hotline's public address, where the relay listens.
const PUBLIC_IP: &str = "127.0.0.3";
/// The one flooding address that breaks the limits.
const FLOODER: &str = "127.0.0.2";
/// How long a blocked source stays blocked in this test.
const BLOCK_S: u64 = 3;
const FLOOD: Duration = Duration::from_secs(20);

/// A tiny deterministic generator for the junk.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn invite(target: &str, from_ip: &str, port: u16, call_id: &str) -> Vec<u8> {
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 {from_ip}\r\ns=-\r\nc=IN IP4 {from_ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
    );
    format!(
        "INVITE sip:support@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {from_ip}:{port};branch=z9hG4bK{call_id}\r\n\
         From: <sip:scanner@{from_ip}>;tag={call_id}\r\nTo: <sip:support@{target}>\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\nContact: <sip:scanner@{from_ip}:{port}>\r\nMax-Forwards: 70\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
    .into_bytes()
}

/// Junk datagrams per 10 ms from [`FLOODER`] (`HOTLINE_FLOOD_JUNK_PER_10MS`, default 6: 600 a
/// second), and never-acknowledged INVITEs per second from each of the 32 spread sources
/// (`HOTLINE_FLOOD_SPREAD_PER_S`, default 5), to find the rate callers still get through.
fn flood_rates() -> (u64, u64) {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    (
        number("HOTLINE_FLOOD_JUNK_PER_10MS", 6),
        number("HOTLINE_FLOOD_SPREAD_PER_S", 5).clamp(1, 100),
    )
}

/// Floods `target` until `stop`: junk from [`FLOODER`] and never-acknowledged INVITEs from 32
/// other addresses. Returns the datagrams sent.
fn flood(target: String, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let (junk_per_tick, spread_per_s) = flood_rates();
    let spread_every = (100 / spread_per_s).max(1);
    let junk = UdpSocket::bind((FLOODER, 0)).expect("bind the flooder");
    let spread: Vec<UdpSocket> = (1..=32)
        .map(|i| UdpSocket::bind((format!("127.0.1.{i}").as_str(), 0)).expect("bind a source"))
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut tick = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Every 10 ms: the junk datagrams, and every few ticks one INVITE per spread source
        // (by default five a second each, under the per-source limit of ten).
        for _ in 0..junk_per_tick {
            let id = format!("junk{}", rng.next());
            let mut data = invite(&target, FLOODER, 5999, &id);
            match rng.next() % 3 {
                0 => {
                    // Mutated: a few bytes flipped anywhere.
                    for _ in 0..1 + rng.next() % 5 {
                        let at = (rng.next() as usize) % data.len();
                        data[at] = rng.next() as u8;
                    }
                }
                1 => {
                    data = (0..(rng.next() % 600) as usize)
                        .map(|_| rng.next() as u8)
                        .collect()
                }
                _ => {}
            }
            let _ = junk.send_to(&data, &target);
            sent.fetch_add(1, Ordering::Relaxed);
        }
        if tick % spread_every == 0 {
            for (i, socket) in spread.iter().enumerate() {
                let ip = format!("127.0.1.{}", i + 1);
                let port = socket.local_addr().map(|a| a.port()).unwrap_or(5060);
                let id = format!("half-open-{i}-{tick}");
                let _ = socket.send_to(&invite(&target, &ip, port, &id), &target);
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        tick += 1;
        let next = started + Duration::from_millis(10 * tick);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

/// Whether an OPTIONS from [`FLOODER`] gets an answer within a second.
fn flooder_is_answered(target: &str) -> bool {
    let socket = UdpSocket::bind((FLOODER, 0)).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port();
    let options = format!(
        "OPTIONS sip:support@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {FLOODER}:{port};branch=z9hG4bKopt{port}\r\n\
         From: <sip:scanner@{FLOODER}>;tag=o\r\nTo: <sip:support@{target}>\r\nCall-ID: options-{port}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    socket.send_to(options.as_bytes(), target).expect("send");
    let mut buffer = [0u8; 4096];
    matches!(socket.recv_from(&mut buffer), Ok((n, _)) if buffer[..n].starts_with(b"SIP/2.0 200"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_gets_through_a_junk_invite_flood_that_leaves_no_records() {
    let rtp = RtpPorts::free(24);
    let relay = MediaRelay::start(PUBLIC_IP, &rtp);
    let hotline = InProcessHotline::start(
        4,
        &format!(
            "port = 0\npublic_ip = \"{PUBLIC_IP}\"\ncodecs = [\"PCMU\"]\n{}\n[sip.limits]\nblock_s = {BLOCK_S}\nmax_half_open = 16\n",
            rtp.toml()
        ),
    )
    .await;
    let target = hotline.sip_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flooder = {
        let (target, stop, sent) = (target.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || flood(target, stop, sent))
    };
    let flood_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A real caller, in the middle of the flood.
    let work = tempfile::tempdir().expect("tempdir");
    let pcap = support_request_pcap(work.path(), PT_PCMU);
    let sipp = support_caller(&target, &pcap);
    let screen = tokio::task::spawn_blocking(move || {
        let work = tempfile::tempdir().expect("tempdir");
        sipp.run_ok(work.path())
    })
    .await
    .expect("join");
    let call_ended = flood_started.elapsed();
    assert!(
        call_ended < FLOOD,
        "the call ended while the flood still went on ({call_ended:?}); SIPp: {screen}"
    );
    // The flooder is blocked while it floods (asked three times: each time its block ends it
    // is let through for a few milliseconds, until its burst is spent again).
    let blocked = {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            (0..3)
                .filter(|_| {
                    std::thread::sleep(Duration::from_millis(300));
                    !flooder_is_answered(&target)
                })
                .count()
                >= 2
        })
        .await
        .expect("join")
    };
    if let Some(rest) = FLOOD.checked_sub(flood_started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    stop.store(true, Ordering::Relaxed);
    flooder.join().expect("the flood thread");
    let flood_s = flood_started.elapsed().as_secs_f64();
    let datagrams = sent.load(Ordering::Relaxed);
    println!(
        "flood: {datagrams} datagrams in {flood_s:.1} s ({:.0}/s)",
        datagrams as f64 / flood_s
    );
    assert!(
        blocked,
        "an OPTIONS from the flooding source was answered during the flood"
    );

    // The real call, and only it, is on record.
    let events = hotline.one_call(Duration::from_secs(20)).await;
    let start = first(&events, "call_start");
    assert!(
        start["from"]
            .as_str()
            .unwrap_or("")
            .starts_with("sip:caller@127.0.0.1"),
        "{start}"
    );
    let finals = final_transcripts(&events);
    assert!(
        finals.iter().any(|t| t.contains("support")),
        "the caller's speech was recognized during the flood: {finals:?}"
    );
    let loud = relay.loud_hotline_packets(300.0);
    assert!(loud > 25, "the caller heard the bot ({loud} loud packets)");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let dirs = hotline.call_dirs();
    assert_eq!(
        dirs.len(),
        1,
        "only the real call left a record, not the junk: {dirs:?}"
    );

    // The block expires: once it is over, the source is answered again.
    tokio::time::sleep(Duration::from_secs(BLOCK_S + 1)).await;
    let answered = tokio::task::spawn_blocking(move || flooder_is_answered(&target))
        .await
        .expect("join");
    assert!(
        answered,
        "the flooding source is answered once its block expired"
    );
}

/// Sends an OPTIONS over a SIP TCP connection and says whether a 200 came back within 2 s.
async fn options_answered_over(stream: &mut tokio::net::TcpStream, target: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let local = stream.local_addr().expect("local addr");
    let options = format!(
        "OPTIONS sip:support@{target} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKtcp{port}\r\n\
         From: <sip:pbx@{ip}>;tag=t\r\nTo: <sip:support@{target}>\r\nCall-ID: tcp-options-{port}\r\n\
         CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        port = local.port(),
        ip = local.ip()
    );
    if stream.write_all(options.as_bytes()).await.is_err() {
        return false;
    }
    let mut buffer = [0u8; 4096];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await,
        Ok(Ok(n)) if buffer[..n].starts_with(b"SIP/2.0 200")
    )
}

/// Opens a SIP TCP connection from `from` (any port) to `target`.
async fn connect_from(from: &str, target: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind");
    socket
        .connect(target.parse().expect("target"))
        .await
        .expect("connect")
}

/// Whether the server closed `stream` (end of stream, or reset) within 2 s, unasked.
async fn closed_by_server(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buffer)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// One address that opens SIP-over-TCP connections and holds them (a slowloris client) gets
/// only `max_connections_per_ip` of them: the next is closed at once. The connections it holds
/// still work, another address (a PBX) is still served, and a place given back is reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_every_sip_connection() {
    let hotline = InProcessHotline::start(
        2,
        "port = 0\ntcp = true\ncodecs = [\"PCMU\"]\n[sip.limits]\nmax_connections_per_ip = 3\n",
    )
    .await;
    let target = hotline.sip_addr();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(FLOODER, &target).await);
    }
    let mut over = connect_from(FLOODER, &target).await;
    assert!(
        closed_by_server(&mut over).await,
        "a fourth connection from one address was kept open"
    );
    assert!(
        options_answered_over(&mut held[0], &target).await,
        "a connection within the cap is not served"
    );
    let mut pbx = connect_from("127.0.0.1", &target).await;
    assert!(
        options_answered_over(&mut pbx, &target).await,
        "another address is not served while one is at its cap"
    );
    held.pop();
    // The server notices the close, then the place is free again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from(FLOODER, &target).await;
        if options_answered_over(&mut again, &target).await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a place given back is not reused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
