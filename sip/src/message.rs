//! SIP messages as the dialog layer sees them: checked by rsipstack's parser, read into our
//! view (RFC 3261 sections 7 and 25), checked for the things RFC 3261 and RFC 4475 make a
//! server refuse, and written back as responses and requests.
//!
//! Two readers, one verdict: rsipstack's parser (a maintained SIP stack) decides whether a
//! message is well formed, and a message it refuses is never served. Our own reader keeps the
//! raw header text (folded lines joined, compact names expanded) and reads even a message the
//! parser refuses far enough to answer it per protocol: 505 for another SIP version, 501 for a
//! method nobody knows, 400 for the rest. A response the parser refuses is dropped.
//!
//! Owns: the [`SipMessage`] view (start line, headers by canonical name, body), the syntax
//! checks that turn a readable but malformed request into a [`Defect`] the dialog layer answers
//! (400, 505), stream framing for SIP over TCP, and the message writer.
//! Invariants: parsing never panics and never indexes past the input; folded header lines are
//! unfolded and compact names expanded before anyone looks at a header; a message whose start
//! line or headers cannot be read at all is an error (it is dropped, never half-processed).

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

/// What makes a readable request malformed; the dialog layer answers it instead of serving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Defect {
    /// A SIP version other than 2.0 (505 Version Not Supported).
    Version(String),
    /// The Request-Line or a header breaks the grammar (400 Bad Request).
    Syntax(String),
}

/// One SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessage {
    pub start: StartLine,
    /// Headers in order, names in canonical (long) form, folded lines joined.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The Content-Length the sender declared, when it gave one (an error when it is not a
    /// number or appears more than once).
    pub declared_length: Option<Result<usize, String>>,
    /// Body bytes that were actually present (may exceed or fall short of the declared length).
    pub available_body: usize,
    /// The first defect found in a request that could still be read; `None` when well formed.
    pub defect: Option<Defect>,
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

/// Headers that may appear once only (RFC 3261 7.3.1: they are not comma-separated lists).
const SINGULAR: [&str; 6] = [
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Type",
];

/// Headers whose values are name-addr or addr-spec.
const ADDRESS_HEADERS: [&str; 3] = ["From", "To", "Contact"];

const TOKEN_EXTRA: &[u8] = b"-.!%*_+`'~";

fn canonical(name: &str) -> String {
    for (short, long) in COMPACT {
        if name.eq_ignore_ascii_case(short) {
            return long.to_string();
        }
    }
    // Well-known names in their usual spelling, so that lookups and echoes agree.
    for long in [
        "Call-ID",
        "Contact",
        "Content-Length",
        "Content-Type",
        "CSeq",
        "From",
        "To",
        "Via",
        "Max-Forwards",
    ] {
        if name.eq_ignore_ascii_case(long) {
            return long.to_string();
        }
    }
    name.to_string()
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || TOKEN_EXTRA.contains(&b))
}

impl SipMessage {
    /// Parses one message (a UDP datagram or a framed TCP message).
    pub fn parse(data: &[u8]) -> Result<Self, MessageError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(MessageError::TooLarge(data.len()));
        }
        let separator = find(data, b"\r\n\r\n")
            .ok_or_else(|| MessageError::Unparsable("no end of headers".into()))?;
        let head = String::from_utf8_lossy(&data[..separator]);
        let mut lines = head.split("\r\n");
        let first = lines.next().unwrap_or("");
        let (start, mut defect) = start_line(first)?;
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                // A folded line continues the previous header (RFC 3261 7.3.1).
                match headers.last_mut() {
                    Some((_, value)) => {
                        if !value.is_empty() {
                            value.push(' ');
                        }
                        value.push_str(line.trim());
                    }
                    None => {
                        return Err(MessageError::Unparsable(
                            "continuation before any header".into(),
                        ))
                    }
                }
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                defect.get_or_insert(Defect::Syntax(format!(
                    "header line without a colon: {line:.40}"
                )));
                continue;
            };
            let name = name.trim();
            if !is_token(name) {
                defect.get_or_insert(Defect::Syntax(format!("bad header name {name:.40}")));
                continue;
            }
            headers.push((canonical(name), value.trim().to_string()));
        }
        let available_body = data.len() - (separator + 4);
        let lengths: Vec<&str> = headers
            .iter()
            .filter(|(n, _)| n == "Content-Length")
            .map(|(_, v)| v.as_str())
            .collect();
        let declared_length = match lengths.as_slice() {
            [] => None,
            [one] => Some(one.parse::<usize>().map_err(|_| one.to_string())),
            several => Some(Err(several.join(", "))),
        };
        // Without a usable Content-Length the body runs to the end of the datagram (18.3).
        let body_end = match &declared_length {
            Some(Ok(length)) => (*length).min(available_body),
            _ => available_body,
        };
        let body = data[separator + 4..separator + 4 + body_end].to_vec();
        let mut message = SipMessage {
            start,
            headers,
            body,
            declared_length,
            available_body,
            defect,
        };
        if message.defect.is_none() && matches!(message.start, StartLine::Request { .. }) {
            message.defect = message.header_defect();
        }
        if message.defect.is_none() {
            if let Err(reason) = strict_parse(data) {
                match &message.start {
                    StartLine::Response { .. } => return Err(MessageError::Unparsable(reason)),
                    // A method rsipstack does not know is answered 501 by the dialog layer;
                    // any other refusal is a syntax error.
                    StartLine::Request { method, .. }
                        if method.parse::<rsipstack::sip::Method>().is_ok() =>
                    {
                        message.defect = Some(Defect::Syntax(reason));
                    }
                    StartLine::Request { .. } => {}
                }
            }
        }
        Ok(message)
    }

    /// The first header that breaks the grammar in a way we must refuse (RFC 4475 3.1.2).
    fn header_defect(&self) -> Option<Defect> {
        for name in SINGULAR {
            if self.headers_named(name).count() > 1 {
                return Some(Defect::Syntax(format!("{name} appears more than once")));
            }
        }
        for via in self.headers_named("Via") {
            if !valid_via(via) {
                return Some(Defect::Syntax(format!("bad Via: {via:.60}")));
            }
        }
        for name in ADDRESS_HEADERS {
            for value in self.headers_named(name) {
                if !valid_address(value) {
                    return Some(Defect::Syntax(format!("bad {name}: {value:.60}")));
                }
            }
        }
        None
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

/// Whether a Via value (one header, possibly several comma-separated values) follows
/// `sent-protocol LWS sent-by *( SEMI via-params )`, with LWS allowed around `/`, `;` and `=`.
fn valid_via(value: &str) -> bool {
    value.split(',').all(|part| {
        let mut pieces = part.split(';');
        let head = pieces.next().unwrap_or("").trim();
        let mut protocol = head.splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) =
            (protocol.next(), protocol.next(), protocol.next())
        else {
            return false;
        };
        let mut rest = rest.split_whitespace();
        let (Some(transport), Some(sent_by), None) = (rest.next(), rest.next(), rest.next()) else {
            return false;
        };
        let params_ok = pieces.all(|p| {
            let (key, val) = p.split_once('=').unwrap_or((p, "x"));
            is_token(key.trim()) && !val.trim().is_empty()
        });
        is_token(name.trim())
            && is_token(version.trim())
            && is_token(transport)
            && !sent_by.contains(['<', '>', '"'])
            && params_ok
    })
}

/// Whether a From, To or Contact value has balanced quotes and angle brackets.
fn valid_address(value: &str) -> bool {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angles = 0i32;
    for c in value.chars() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => angles += 1,
            '>' => angles -= 1,
            _ => {}
        }
        if !(0..=1).contains(&angles) {
            return false;
        }
    }
    !in_quotes && angles == 0
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

/// The scheme of a URI (`sip` of `sip:bob@x`), lower-cased; empty when it has none.
pub fn scheme_of(uri: &str) -> String {
    match uri.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            scheme.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// rsipstack's verdict on a whole message; its parser runs under `catch_unwind` as a last guard.
fn strict_parse(data: &[u8]) -> Result<(), String> {
    match std::panic::catch_unwind(|| rsipstack::sip::parser::parse_message(data)) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("SIP parser: {e}")),
        Err(_) => Err("SIP parser failure".into()),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads the start line. A request whose method can be read but whose Request-Line is otherwise
/// broken comes back with a [`Defect`] so that it can be answered; anything else unreadable is
/// an error.
fn start_line(line: &str) -> Result<(StartLine, Option<Defect>), MessageError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut parts = rest.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().unwrap_or("");
        let reason = parts.next().unwrap_or("");
        if version != "2.0" {
            return Err(MessageError::Unparsable("response version".into()));
        }
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (100..700).contains(c))
            .ok_or_else(|| MessageError::Unparsable("bad status code".into()))?;
        return Ok((
            StartLine::Response {
                code,
                reason: reason.to_string(),
            },
            None,
        ));
    }
    let words: Vec<&str> = line.split(' ').collect();
    let method = words.first().copied().unwrap_or("");
    if !is_token(method) {
        return Err(MessageError::Unparsable("bad request line".into()));
    }
    // Extra SP between or after the elements is read liberally (RFC 4475 3.1.2.9, 3.1.2.10);
    // whitespace inside the Request-URI is not (3.1.2.8).
    let elements: Vec<&str> = line.split_whitespace().collect();
    let uri = elements.get(1).copied().unwrap_or("").to_string();
    let request = StartLine::Request {
        method: method.to_string(),
        uri: uri.clone(),
    };
    let [_, uri, version] = elements.as_slice() else {
        return Ok((
            request,
            Some(Defect::Syntax(
                "the Request-Line needs exactly method, URI and version".into(),
            )),
        ));
    };
    let defect = if let Some(number) = version.strip_prefix("SIP/") {
        (number != "2.0").then(|| Defect::Version(version.to_string()))
    } else {
        Some(Defect::Syntax(format!("bad version {version:.20}")))
    };
    let defect = defect.or_else(|| {
        (scheme_of(uri).is_empty() || uri.contains(['<', '>', '"']))
            .then(|| Defect::Syntax(format!("bad Request-URI {uri:.60}")))
    });
    Ok((request, defect))
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
        // A Content-Length near usize::MAX must not wrap the sum (found by fuzzing).
        let total = (end + 4).saturating_add(length);
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
        406 => "Not Acceptable",
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
            b"SIP/7.0 200 OK\r\n\r\n",
            b"\r\n Via: folded\r\n\r\n",
        ] {
            assert!(
                SipMessage::parse(data).is_err(),
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn readable_but_malformed_requests_carry_a_defect() {
        let base = "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let parse = |start: &str| SipMessage::parse(format!("{start}\r\n{base}").as_bytes());
        assert_eq!(parse("OPTIONS sip:a@b SIP/2.0").unwrap().defect, None);
        // Extra SP in the Request-Line is refused by the SIP parser (RFC 4475 lwsstart
        // allows either answer).
        assert!(matches!(
            parse("OPTIONS  sip:a@b  SIP/2.0  ").unwrap().defect,
            Some(Defect::Syntax(_))
        ));
        assert_eq!(
            parse("OPTIONS sip:a@b SIP/3.0").unwrap().defect,
            Some(Defect::Version("SIP/3.0".into()))
        );
        for bad in [
            "OPTIONS sip:a@b; lr SIP/2.0",
            "OPTIONS <sip:a@b> SIP/2.0",
            "OPTIONS sip:a@b HTTP/1.1",
            "OPTIONS sip:a@b",
        ] {
            assert!(
                matches!(parse(bad).unwrap().defect, Some(Defect::Syntax(_))),
                "{bad}"
            );
        }
        let m = SipMessage::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;;,\r\nCall-ID: a\r\nCall-ID: b\r\n\r\n",
        )
        .unwrap();
        assert!(matches!(m.defect, Some(Defect::Syntax(_))));
        let m = SipMessage::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nTo: \"open <sip:a@b>\r\nl: 1\r\nl: 2\r\n\r\nab",
        )
        .unwrap();
        assert!(matches!(m.defect, Some(Defect::Syntax(_))));
        assert_eq!(m.declared_length, Some(Err("1, 2".into())));
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

    /// Found by fuzzing (tests/fuzz, `sip_message`): a Content-Length of usize::MAX on a TCP
    /// stream overflowed the message's length sum (a panic in debug builds, a wrapped length
    /// and a cut message in release).
    #[test]
    fn a_content_length_near_the_top_of_usize_is_too_large_not_an_overflow() {
        let mut framer = StreamFramer::default();
        framer.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 18446744073709551615\r\n\r\nabc");
        assert!(matches!(
            framer.next_message(),
            Err(MessageError::TooLarge(_))
        ));
    }
}
