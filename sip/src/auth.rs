//! HTTP digest authentication for SIP (RFC 3261 22, RFC 2617 MD5 with or without `qop=auth`).
//!
//! Owns: reading challenge and credential parameters, computing responses for our REGISTER, and
//! checking the credentials of inbound INVITEs against nonces we issued.
//! Invariants: a nonce we issued is accepted only while it is among the most recent ones and
//! younger than [`NONCE_LIFETIME_MS`]; each answer is accepted once.

use std::collections::VecDeque;

use md5::{Digest, Md5};

/// Digest parameters (`realm`, `nonce`, `username`, ...) from a challenge or credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestParams {
    pub params: Vec<(String, String)>,
}

impl DigestParams {
    /// Parses `Digest k="v", k2=v2`; `None` when it is not a digest header.
    pub fn parse(value: &str) -> Option<Self> {
        let rest = value.trim();
        let (scheme, rest) = rest.split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut params = Vec::new();
        let mut chars = rest.chars().peekable();
        loop {
            while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
                chars.next();
            }
            let mut key = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c == ',' {
                    break;
                }
                key.push(c);
                chars.next();
            }
            if key.trim().is_empty() {
                break;
            }
            let mut val = String::new();
            if chars.peek() == Some(&'=') {
                chars.next();
                if chars.peek() == Some(&'"') {
                    chars.next();
                    let mut escaped = false;
                    for c in chars.by_ref() {
                        if escaped {
                            val.push(c);
                            escaped = false;
                        } else if c == '\\' {
                            escaped = true;
                        } else if c == '"' {
                            break;
                        } else {
                            val.push(c);
                        }
                    }
                } else {
                    while let Some(&c) = chars.peek() {
                        if c == ',' {
                            break;
                        }
                        val.push(c);
                        chars.next();
                    }
                }
            }
            params.push((key.trim().to_ascii_lowercase(), val.trim().to_string()));
        }
        Some(Self { params })
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The digest response for MD5 (qop `auth` when `cnonce_nc` is given).
pub fn digest_response(
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    cnonce_nc: Option<(&str, &str)>,
) -> String {
    let ha1 = md5_hex(&format!("{username}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match cnonce_nc {
        Some((cnonce, nc)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Builds an `Authorization` (or `Proxy-Authorization`) value answering `challenge` (a WWW- or
/// Proxy-Authenticate value). `nc` counts our answers to this nonce, from 1 (used with
/// `qop=auth`; RFC 2617 3.2.2).
pub fn authorization(
    challenge: &DigestParams,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Option<String> {
    let realm = challenge.get("realm")?;
    let nonce = challenge.get("nonce")?;
    if let Some(algorithm) = challenge.get("algorithm") {
        if !algorithm.eq_ignore_ascii_case("MD5") {
            return None;
        }
    }
    let qop_auth = challenge
        .get("qop")
        .is_some_and(|q| q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")));
    let nc = format!("{nc:08x}");
    let nc = nc.as_str();
    let response = digest_response(
        username,
        realm,
        password,
        method,
        uri,
        nonce,
        qop_auth.then_some((cnonce, nc)),
    );
    let mut value = format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm=MD5"
    );
    if qop_auth {
        value.push_str(&format!(", qop=auth, cnonce=\"{cnonce}\", nc={nc}"));
    }
    if let Some(opaque) = challenge.get("opaque") {
        value.push_str(&format!(", opaque=\"{opaque}\""));
    }
    Some(value)
}

/// How long a nonce we issued is good for; after that an answer with it is told `stale=true`
/// and gets a fresh one (RFC 2617 3.2.1).
pub const NONCE_LIFETIME_MS: u64 = 30_000;

/// A nonce we issued, and what has been answered with it.
#[derive(Debug)]
struct IssuedNonce {
    value: String,
    issued_ms: u64,
    /// The highest `nc` accepted with this nonce (qop=auth); an answer must count higher.
    last_nc: u32,
    /// Used once without qop: never again.
    spent: bool,
}

/// What [`DigestGuard::verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestVerdict {
    /// Good credentials on a live nonce, not seen before.
    Valid,
    /// Good credentials on a nonce that has expired: challenge again with `stale=true`.
    Stale,
    /// Wrong, unknown or replayed.
    Invalid,
}

/// Inbound digest: issues nonces and checks credentials. Nonces expire after
/// [`NONCE_LIFETIME_MS`]; an answer is accepted once (each `nc` must count up, and an answer
/// without qop spends its nonce), so a captured INVITE cannot be replayed.
#[derive(Debug)]
pub struct DigestGuard {
    realm: String,
    username: String,
    password: String,
    nonces: VecDeque<IssuedNonce>,
}

impl DigestGuard {
    pub fn new(realm: &str, username: &str, password: &str) -> Self {
        Self {
            realm: realm.into(),
            username: username.into(),
            password: password.into(),
            nonces: VecDeque::new(),
        }
    }

    /// A `WWW-Authenticate` value with a fresh nonce (from the caller's randomness), marked
    /// `stale` when it replaces an expired one.
    pub fn challenge(&mut self, nonce: String, now_ms: u64, stale: bool) -> String {
        while self.nonces.len() >= 256
            || self
                .nonces
                .front()
                .is_some_and(|n| now_ms.saturating_sub(n.issued_ms) > 2 * NONCE_LIFETIME_MS)
        {
            self.nonces.pop_front();
        }
        let stale = if stale { ", stale=TRUE" } else { "" };
        let value = format!(
            "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}",
            self.realm
        );
        self.nonces.push_back(IssuedNonce {
            value: nonce,
            issued_ms: now_ms,
            last_nc: 0,
            spent: false,
        });
        value
    }

    /// Checks an `Authorization` value for this method at `now_ms`; a valid answer is
    /// remembered, so the same one is refused next time.
    pub fn verify(&mut self, authorization: &str, method: &str, now_ms: u64) -> DigestVerdict {
        let Some(p) = DigestParams::parse(authorization) else {
            return DigestVerdict::Invalid;
        };
        let (Some(user), Some(realm), Some(nonce), Some(uri), Some(response)) = (
            p.get("username"),
            p.get("realm"),
            p.get("nonce"),
            p.get("uri"),
            p.get("response"),
        ) else {
            return DigestVerdict::Invalid;
        };
        if user != self.username || realm != self.realm {
            return DigestVerdict::Invalid;
        }
        let qop = match (p.get("qop"), p.get("cnonce"), p.get("nc")) {
            (Some(q), Some(cnonce), Some(nc)) if q.eq_ignore_ascii_case("auth") => {
                Some((cnonce, nc))
            }
            (None, _, _) => None,
            _ => return DigestVerdict::Invalid,
        };
        let expected = digest_response(
            &self.username,
            &self.realm,
            &self.password,
            method,
            uri,
            nonce,
            qop,
        );
        if expected != response {
            return DigestVerdict::Invalid;
        }
        let Some(issued) = self.nonces.iter_mut().find(|n| n.value == nonce) else {
            return DigestVerdict::Invalid;
        };
        if now_ms.saturating_sub(issued.issued_ms) > NONCE_LIFETIME_MS {
            return DigestVerdict::Stale;
        }
        match qop {
            Some((_, nc)) => {
                let Ok(nc) = u32::from_str_radix(nc, 16) else {
                    return DigestVerdict::Invalid;
                };
                if nc <= issued.last_nc {
                    return DigestVerdict::Invalid;
                }
                issued.last_nc = nc;
            }
            None => {
                if issued.spent {
                    return DigestVerdict::Invalid;
                }
                issued.spent = true;
            }
        }
        DigestVerdict::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // The worked example of RFC 2617 section 3.5.
        let r = digest_response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some(("0a4f113b", "00000001")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn our_answer_passes_our_check() {
        let mut guard = DigestGuard::new("hotline", "trunk", "s3cret");
        let challenge = DigestParams::parse(&guard.challenge("n1".into(), 0, false)).unwrap();
        let auth = authorization(
            &challenge,
            "trunk",
            "s3cret",
            "INVITE",
            "sip:bot@127.0.0.1",
            "c1",
            1,
        )
        .unwrap();
        assert_eq!(guard.verify(&auth, "BYE", 10), DigestVerdict::Invalid);
        assert_eq!(guard.verify(&auth, "INVITE", 10), DigestVerdict::Valid);
        assert_eq!(
            guard.verify(&auth, "INVITE", 20),
            DigestVerdict::Invalid,
            "the same answer again is a replay"
        );
        let next = authorization(
            &challenge,
            "trunk",
            "s3cret",
            "INVITE",
            "sip:bot@127.0.0.1",
            "c1",
            2,
        )
        .unwrap();
        assert_eq!(guard.verify(&next, "INVITE", 30), DigestVerdict::Valid);
        let late = authorization(
            &challenge,
            "trunk",
            "s3cret",
            "INVITE",
            "sip:bot@127.0.0.1",
            "c1",
            3,
        )
        .unwrap();
        assert_eq!(
            guard.verify(&late, "INVITE", NONCE_LIFETIME_MS + 1),
            DigestVerdict::Stale,
            "an expired nonce is stale"
        );
        assert!(guard
            .challenge("n2".into(), NONCE_LIFETIME_MS + 1, true)
            .contains("stale=TRUE"));
        let wrong = authorization(
            &challenge,
            "trunk",
            "guess",
            "INVITE",
            "sip:bot@127.0.0.1",
            "c1",
            1,
        )
        .unwrap();
        assert_eq!(guard.verify(&wrong, "INVITE", 40), DigestVerdict::Invalid);
        assert_eq!(
            guard.verify("Digest garbage", "INVITE", 40),
            DigestVerdict::Invalid
        );
        assert_eq!(
            guard.verify("Basic Zm9v", "INVITE", 40),
            DigestVerdict::Invalid
        );
    }

    #[test]
    fn parses_quoted_and_bare_values() {
        let p = DigestParams::parse("Digest realm=\"a, b\",nonce=xyz , algorithm=MD5,stale=FALSE")
            .unwrap();
        assert_eq!(p.get("realm"), Some("a, b"));
        assert_eq!(p.get("nonce"), Some("xyz"));
        assert_eq!(p.get("stale"), Some("FALSE"));
        assert!(DigestParams::parse("Basic realm=x").is_none());
    }
}
