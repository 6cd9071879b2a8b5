//! The phone line's signalling against a live hotline over loopback UDP, from a plain socket
//! acting as the caller: two concurrent calls, rejection at `server.max_calls` with Retry-After,
//! malformed SIP (cases after RFC 4475) and garbage on a call's RTP port while the calls go on,
//! and BYE from the caller.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::hotline::InProcessHotline;
use common::ports::RtpPorts;

struct Caller {
    sip: UdpSocket,
    rtp: UdpSocket,
    hotline: String,
}

impl Caller {
    fn new(hotline_port: u16) -> Self {
        let sip = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sip.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        rtp.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        Self {
            sip,
            rtp,
            hotline: format!("127.0.0.1:{hotline_port}"),
        }
    }

    fn request(
        &self,
        method: &str,
        call_id: &str,
        cseq: u32,
        to_tag: Option<&str>,
        body: &str,
    ) -> String {
        let port = self.sip.local_addr().expect("addr").port();
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:bot@{} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-{call_id}-{cseq}-{method}\r\n\
             From: <sip:tester@127.0.0.1:{port}>;tag=t-{call_id}\r\nTo: <sip:bot@{}>{to_tag}\r\nCall-ID: {call_id}\r\n\
             CSeq: {cseq} {method}\r\nContact: <sip:tester@127.0.0.1:{port}>\r\nMax-Forwards: 70\r\n{content_type}\
             Content-Length: {}\r\n\r\n{body}",
            self.hotline,
            self.hotline,
            body.len()
        )
    }

    fn send(&self, message: &str) {
        self.sip
            .send_to(message.as_bytes(), &self.hotline)
            .expect("send");
    }

    /// Responses until one with a final code for `call_id` (or the timeout).
    fn final_response(&self, call_id: &str) -> Option<String> {
        self.final_response_within(call_id, Duration::from_secs(5))
    }

    fn final_response_within(&self, call_id: &str, wait: Duration) -> Option<String> {
        let deadline = Instant::now() + wait;
        let mut buffer = [0u8; 8192];
        while Instant::now() < deadline {
            let Ok((len, _)) = self.sip.recv_from(&mut buffer) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buffer[..len]).to_string();
            let code: u16 = text.get(8..11).and_then(|c| c.parse().ok()).unwrap_or(0);
            if code >= 200 && text.contains(call_id) {
                return Some(text);
            }
        }
        None
    }

    fn invite(&self, call_id: &str) -> Option<String> {
        let rtp_port = self.rtp.local_addr().expect("addr").port();
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\n\
             a=rtpmap:101 telephone-event/8000\r\n"
        );
        self.send(&self.request("INVITE", call_id, 1, None, &sdp));
        self.final_response(call_id)
    }

    /// Counts RTP packets received within `window`.
    fn rtp_packets(&self, window: Duration) -> usize {
        let deadline = Instant::now() + window;
        let mut buffer = [0u8; 2048];
        let mut count = 0;
        while Instant::now() < deadline {
            if let Ok((len, _)) = self.rtp.recv_from(&mut buffer) {
                if len == 172 && buffer[0] == 0x80 {
                    count += 1;
                }
            }
        }
        count
    }
}

fn code(response: &str) -> u16 {
    response
        .get(8..11)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn to_tag(response: &str) -> String {
    let to = response
        .lines()
        .find(|l| l.starts_with("To:"))
        .expect("To header");
    to.split(";tag=").nth(1).expect("To tag").trim().to_string()
}

fn audio_port(response: &str) -> u16 {
    let m = response
        .lines()
        .find(|l| l.starts_with("m=audio "))
        .expect("SDP answer");
    m.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_capacity_and_bad_input() {
    let hotline = InProcessHotline::start(
        2,
        &format!(
            "port = 0\n{}busy_retry_after_s = 17\n",
            RtpPorts::free(10).toml()
        ),
    )
    .await;
    let port = hotline.sip_port;

    tokio::task::spawn_blocking(move || {
        let first = Caller::new(port);
        let second = Caller::new(port);
        let third = Caller::new(port);
        let a = first.invite("call-a").expect("an answer to call A");
        let b = second.invite("call-b").expect("an answer to call B");
        assert_eq!(
            (code(&a), code(&b)),
            (200, 200),
            "two calls at once:\n{a}\n{b}"
        );
        for (caller, answer, id) in [(&first, &a, "call-a"), (&second, &b, "call-b")] {
            caller.send(&caller.request("ACK", id, 1, Some(&to_tag(answer)), ""));
        }
        let busy = third.invite("call-c").expect("an answer to call C");
        assert_eq!(code(&busy), 486, "{busy}");
        assert!(busy.contains("Retry-After: 17\r\n"), "{busy}");

        // Bad input while both calls are up.
        let rtp_port = audio_port(&a);
        let garbage = UdpSocket::bind("127.0.0.1:0").expect("bind");
        for junk in [
            &b"hello"[..],
            &[0u8; 400],
            &[0xbf; 12],
            &[0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 255],
        ] {
            garbage
                .send_to(junk, ("127.0.0.1", rtp_port))
                .expect("send");
        }
        let probe = Caller::new(port);
        let valid = probe.request("OPTIONS", "bad-1", 1, None, "");
        let cases: Vec<(String, Option<u16>)> = vec![
            (
                valid.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
                Some(400),
            ),
            (
                valid.replace("Content-Length: 0", "Content-Length: 9999"),
                Some(400),
            ),
            (
                valid.replace("Content-Length: 0", "Content-Length: -5"),
                Some(400),
            ),
            (
                valid
                    .replace("OPTIONS sip:", "NEWMETHOD sip:")
                    .replace("1 OPTIONS", "1 NEWMETHOD"),
                Some(501),
            ),
            (
                valid
                    .replace("OPTIONS sip:", "REGISTER sip:")
                    .replace("1 OPTIONS", "1 REGISTER"),
                Some(405),
            ),
            (
                valid
                    .replace("Max-Forwards: 70", "Max-Forwards: 0")
                    .replace("OPTIONS sip:", "INVITE sip:")
                    .replace("1 OPTIONS", "1 INVITE"),
                Some(483),
            ),
            (valid.replace("Call-ID: bad-1\r\n", ""), Some(400)),
            (valid.replace("\r\n", "\n"), None),
            ("\u{0}\u{1}\u{2} not SIP at all\r\n\r\n".to_string(), None),
            ("INVITE sip:bot@127.0.0.1 SIP/2.0\r\n\r\n".to_string(), None),
            (
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK-nothing\r\n\r\n"
                    .to_string(),
                None,
            ),
        ];
        for (message, expected) in cases {
            probe.send(&message);
            // Silence is the right answer to what cannot be answered; a second is enough to tell.
            let wait = if expected.is_some() {
                Duration::from_secs(5)
            } else {
                Duration::from_secs(1)
            };
            let got = probe.final_response_within("bad-1", wait).map(|r| code(&r));
            assert_eq!(got, expected, "{message:?}");
        }
        // A bad re-offer inside call A is refused; the call goes on.
        let reoffer = first.request(
            "INVITE",
            "call-a",
            2,
            Some(&to_tag(&a)),
            "v=0\r\nm=audio nonsense\r\n",
        );
        first.send(&reoffer);
        assert_eq!(first.final_response("call-a").map(|r| code(&r)), Some(488));
        first.send(&first.request("ACK", "call-a", 2, Some(&to_tag(&a)), ""));

        // Both calls still carry audio, then end with the caller's BYE.
        for (caller, answer, id) in [(&first, &a, "call-a"), (&second, &b, "call-b")] {
            let packets = caller.rtp_packets(Duration::from_millis(600));
            assert!(
                packets >= 20,
                "{id} still gets RTP every 20 ms ({packets} in 600 ms)"
            );
            caller.send(&caller.request("BYE", id, 3, Some(&to_tag(answer)), ""));
            assert_eq!(
                caller.final_response(id).map(|r| code(&r)),
                Some(200),
                "{id} BYE"
            );
        }
        let options = probe.request("OPTIONS", "bad-1", 9, None, "");
        probe.send(&options);
        assert_eq!(
            probe.final_response("bad-1").map(|r| code(&r)),
            Some(200),
            "the server still answers"
        );
    })
    .await
    .expect("the caller's checks");

    // Two records, each ended by the caller.
    let calls = hotline.finished_calls(2, Duration::from_secs(10)).await;
    let reasons: Vec<String> = calls
        .iter()
        .map(|events| {
            common::records::first(events, "hangup")["reason"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 2, "two finished call records: {reasons:?}");
    assert!(reasons.iter().all(|r| !r.is_empty()), "{reasons:?}");
}
