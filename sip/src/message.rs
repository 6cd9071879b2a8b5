//! SIP messages as the dialog layer sees them: parsed by rsipstack's parser, checked for the
//! things RFC 3261 makes a server refuse, and written back as responses and requests.
//!
//! Owns: the [`SipMessage`] view (start line, headers by canonical name, body), the checks that
//! turn bad requests into 4xx answers, stream framing for SIP over TCP, and the message writer.
//! Invariants: parsing never panics (the parser runs under `catch_unwind` as a last guard);
//! a message that cannot be answered is dropped, never half-processed.

use std::fmt::Write as _;

/// Why a datagram or stream chunk is not a SIP message we can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("SIP: not a message: {0}")]
    Unparsable(String),
    #[error("SIP: message too large ({0} bytes)")]
    TooLarge(usize),
}

/// The start line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

/// One SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    pub start: StartLine,
    /// Headers in order, names in canonical (long) form.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The Content-Length the sender declared, when it gave one.
    pub declared_length: Option<Result<usize, String>>,
    /// Body bytes that were actually present (may exceed or fall short of the declared length).
    pub available_body: usize,
}

/// The most bytes one message may have.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

const COMPACT: [(&str, &str); 14] = [
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("r", "Refer-To"),
    ("o", "Event"),
    ("x", "Session-Expires"),
    ("u", "Allow-Events"),
];

fn canonical(name: &str) -> String {
    for (short, long) in COMPACT {
        if name.eq_ignore_ascii_case(short) {
            return long.to_string();
        }
    }
    name.to_string()
}

impl SipMessage {
    /// Parses one message (a UDP datagram or a framed TCP message).
    pub fn parse(data: &[u8]) -> Result<Self, MessageError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge(data.len()));
        }
        let parsed = std::panic::catch_unwind(|| rsipstack::sip::parser::parse_message(data))
            .map_err(|_| MessageError::Unparsable("parser failure".into()))?
            .map_err(|e| MessageError::Unparsable(e.to_string()));
        let (headers, body) = match parsed {
            Ok(message) => {
                use rsipstack::sip::HasHeaders;
                let headers: Vec<(String, String)> = message
                    .headers()
                    .iter()
                    .map(|h| (canonical(h.name()), h.value().trim().to_string()))
                    .collect();
                let body = match message {
                    rsipstack::sip::SipMessage::Request(r) => r.body,
                    rsipstack::sip::SipMessage::Response(r) => r.body,
                };
                (headers, body)
            }
            // The parser refuses methods it does not know; keep enough of such a request to
            // answer it with 501.
            Err(e) => salvage_unknown_method(data).ok_or(e)?,
        };
        let start = start_line(data)?;
        let separator = find(data, b"\r\n\r\n")
            .ok_or_else(|| MessageError::Unparsable("no end of headers".into()))?;
        let available_body = data.len() - (separator + 4);
        let declared_length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
            .map(|(_, v)| v.trim().parse::<usize>().map_err(|_| v.clone()));
        Ok(SipMessage {
            start,
            headers,
            body,
            declared_length,
            available_body,
        })
    }

    /// The request method, if a request.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers of that name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, String)> {
        let value = self.header("CSeq")?;
        let mut parts = value.split_whitespace();
        let number: u32 = parts.next()?.parse().ok()?;
        let method = parts.next()?.to_string();
        parts.next().is_none().then_some((number, method))
    }

    /// The top Via's branch parameter.
    pub fn branch(&self) -> Option<String> {
        let via = self.header("Via")?;
        let top = via.split(',').next()?;
        param(top, "branch")
    }

    /// The tag parameter of the From or To header.
    pub fn tag(&self, header: &str) -> Option<String> {
        param(self.header(header)?, "tag")
    }
}

/// A `;name=value` parameter from a header value (outside any `<...>`).
pub fn param(value: &str, name: &str) -> Option<String> {
    let after_uri = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after_uri.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1` gives `sip:bob@x`).
pub fn uri_of(value: &str) -> String {
    if let (Some(open), Some(close)) = (value.find('<'), value.rfind('>')) {
        if open < close {
            return value[open + 1..close].trim().to_string();
        }
    }
    value.split(';').next().unwrap_or(value).trim().to_string()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn start_line(data: &[u8]) -> Result<StartLine, MessageError> {
    let end = find(data, b"\r\n").unwrap_or(data.len());
    let line = std::str::from_utf8(&data[..end])
        .map_err(|_| MessageError::Unparsable("start line not UTF-8".into()))?;
    let mut parts = line.splitn(3, ' ');
    let first = parts.next().unwrap_or("");
    let second = parts.next().unwrap_or("");
    let third = parts.next().unwrap_or("");
    if first == "SIP/2.0" {
        let code: u16 = second
            .parse()
            .map_err(|_| MessageError::Unparsable("bad status code".into()))?;
        if !(100..700).contains(&code) {
            return Err(MessageError::Unparsable("status code out of range".into()));
        }
        return Ok(StartLine::Response {
            code,
            reason: third.to_string(),
        });
    }
    if third != "SIP/2.0"
        || first.is_empty()
        || second.is_empty()
        || !first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    {
        return Err(MessageError::Unparsable("bad request line".into()));
    }
    Ok(StartLine::Request {
        method: first.to_string(),
        uri: second.to_string(),
    })
}

/// Reads the headers of a request whose method the parser does not know, for a 501.
fn salvage_unknown_method(data: &[u8]) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let StartLine::Request { method, .. } = start_line(data).ok()? else {
        return None;
    };
    if method.parse::<rsipstack::sip::Method>().is_ok() {
        return None;
    }
    let end = find(data, b"\r\n\r\n")?;
    let text = std::str::from_utf8(&data[..end]).ok()?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n").skip(1) {
        if line.starts_with(' ') || line.starts_with('\t') {
            let (_, last) = headers.last_mut()?;
            last.push(' ');
            last.push_str(line.trim());
            continue;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((canonical(name.trim()), value.trim().to_string()));
    }
    Some((headers, Vec::new()))
}

/// Splits SIP messages out of a TCP byte stream (RFC 3261 18.3: Content-Length frames them).
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: Vec<u8>,
}

impl StreamFramer {
    /// Adds received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next whole message; `Err` means the stream is broken and must be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, MessageError> {
        // Keep-alive CRLFs between messages (RFC 5626) are skipped.
        let leading = self
            .buffer
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        self.buffer.drain(..leading);
        let Some(end) = find(&self.buffer, b"\r\n\r\n") else {
            if self.buffer.len() > MAX_MESSAGE_BYTES {
                return Err(MessageError::TooLarge(self.buffer.len()));
            }
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).to_string();
        let mut length = None;
        for line in head.split("\r\n").skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim();
                if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
                    length = Some(
                        value
                            .trim()
                            .parse::<usize>()
                            .map_err(|_| MessageError::Unparsable("bad Content-Length".into()))?,
                    );
                }
            }
        }
        // Over a stream, Content-Length is mandatory.
        let length = length
            .ok_or_else(|| MessageError::Unparsable("no Content-Length on a stream".into()))?;
        let total = end + 4 + length;
        if total > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge(total));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        Ok(Some(self.buffer.drain(..total).collect()))
    }
}

/// A message being written.
#[derive(Debug, Clone)]
pub struct MessageWriter {
    text: String,
}

impl MessageWriter {
    /// Starts a response with the standard reason phrase.
    pub fn response(code: u16) -> Self {
        Self {
            text: format!("SIP/2.0 {code} {}\r\n", reason_phrase(code)),
        }
    }

    /// Starts a request.
    pub fn request(method: &str, uri: &str) -> Self {
        Self {
            text: format!("{method} {uri} SIP/2.0\r\n"),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let _ = write!(self.text, "{name}: {value}\r\n");
        self
    }

    /// Copies the headers a response must echo from the request (RFC 3261 8.2.6.2), adding our
    /// To tag when the request had none (not on 100 Trying).
    pub fn echo(mut self, request: &SipMessage, to_tag: Option<&str>) -> Self {
        for via in request.headers_named("Via") {
            let _ = write!(self.text, "Via: {via}\r\n");
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            let Some(value) = request.header(name) else {
                continue;
            };
            if name == "To" && request.tag("To").is_none() {
                if let Some(tag) = to_tag {
                    let _ = write!(self.text, "To: {value};tag={tag}\r\n");
                    continue;
                }
            }
            let _ = write!(self.text, "{name}: {value}\r\n");
        }
        self
    }

    /// Ends the headers and adds a body (or none).
    pub fn body(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let Some(content_type) = content_type {
            let _ = write!(self.text, "Content-Type: {content_type}\r\n");
        }
        let _ = write!(self.text, "Content-Length: {}\r\n\r\n", body.len());
        let mut out = self.text.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// The standard reason phrase for the codes we send.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        481 => "Call/Transaction Does Not Exist",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        603 => "Decline",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
        v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport\r\n\
        Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-2\r\n\
        f: \"Al\" <sip:alice@10.0.0.1>;tag=abc\r\n\
        t: <sip:bob@127.0.0.1>\r\n\
        i: call-1\r\n\
        CSeq: 7 INVITE\r\n\
        l: 4\r\n\r\nv=0\n";

    #[test]
    fn compact_headers_are_understood_and_echoed() {
        let m = SipMessage::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.header("Call-ID"), Some("call-1"));
        assert_eq!(m.cseq(), Some((7, "INVITE".into())));
        assert_eq!(m.branch().as_deref(), Some("z9hG4bK-1"));
        assert_eq!(m.tag("From").as_deref(), Some("abc"));
        assert_eq!(uri_of(m.header("From").unwrap()), "sip:alice@10.0.0.1");
        assert_eq!(m.body, b"v=0\n");
        let response = MessageWriter::response(180)
            .echo(&m, Some("xyz"))
            .body(None, b"");
        let text = String::from_utf8(response).unwrap();
        assert!(text.starts_with("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1;rport\r\nVia: SIP/2.0/UDP 10.0.0.2"), "{text}");
        assert!(text.contains("To: <sip:bob@127.0.0.1>;tag=xyz\r\n"));
        let back = SipMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(
            back.start,
            StartLine::Response {
                code: 180,
                reason: "Ringing".into()
            }
        );
    }

    #[test]
    fn unknown_methods_are_kept_for_an_answer() {
        let m = SipMessage::parse(b"FOO sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: a\r\nCSeq: 1 FOO\r\n\r\n").unwrap();
        assert_eq!(m.method(), Some("FOO"));
        assert_eq!(m.header("Call-ID"), Some("a"));
    }

    #[test]
    fn garbage_is_refused() {
        for data in [
            &b""[..],
            b"\r\n\r\n",
            b"hello",
            b"SIP/2.0 99999 x\r\n\r\n",
            b"\xff\xff\r\n\r\n",
            b"INVITE sip:a@b SIP/7.0\r\n\r\n",
        ] {
            assert!(
                SipMessage::parse(data).is_err(),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn tcp_framing_uses_content_length() {
        let mut framer = StreamFramer::default();
        let message = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";
        framer.push(b"\r\n\r\n");
        framer.push(&message[..20]);
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(&message[20..]);
        framer.push(message);
        assert_eq!(framer.next_message().unwrap().unwrap(), message.to_vec());
        assert_eq!(framer.next_message().unwrap().unwrap(), message.to_vec());
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\n\r\n");
        assert!(framer.next_message().is_err());
    }
}
