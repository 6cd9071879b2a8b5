//! Per-source rate limits, after Kamailio's pike: a source that sends too many messages,
//! or starts too many calls, is blocked for a while and everything it sends is dropped unread.
//!
//! Owns: [`SourceLimits`] (the settings) and [`SourceLimiter`], a token bucket per source
//! address for all messages and another for new calls (INVITEs that open a dialog), the block
//! list, and its bounded table of sources; and [`ConnectionCaps`], the caps on open stream
//! connections per address and in all, shared by SIP over TCP/TLS and the web server.
//!
//! Sans-IO: every check carries `now_ms` on a monotonic clock; [`SourceLimiter::poll_timeout`]
//! says when the next block ends and [`SourceLimiter::expire`] ends it.
//!
//! Invariants: a blocked source is reported once when its block starts and once when it ends
//! (with the count of messages dropped meanwhile), never per message; trusted networks are
//! never limited; the table holds at most [`SourceLimits::max_sources`] sources (idle full
//! buckets are forgotten first; when every one is busy, the new source shares no state and
//! passes), so a flood from many addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::dialog::IpNet;

/// The per-source limits. A rate of 0 turns that limit off.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLimits {
    /// Messages per second one source may send, on average.
    pub messages_per_s: f64,
    /// How many messages a source may send at once above the average.
    pub message_burst: f64,
    /// New calls (dialog-opening INVITEs) per second one source may start, on average.
    pub calls_per_s: f64,
    /// How many calls a source may start at once above the average.
    pub call_burst: f64,
    /// How long an offender is blocked.
    pub block_ms: u64,
    /// Sources kept in the table at most.
    pub max_sources: usize,
    /// Networks never limited (trusted trunks and PBXs).
    pub exempt: Vec<IpNet>,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            messages_per_s: 200.0,
            message_burst: 400.0,
            calls_per_s: 10.0,
            call_burst: 20.0,
            block_ms: 60_000,
            max_sources: 65_536,
            exempt: Vec::new(),
        }
    }
}

/// Which limit a source broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Too many messages.
    Messages,
    /// Too many new calls.
    Calls,
}

impl LimitKind {
    /// The stable code of the limit, for logs and events.
    pub fn code(self) -> &'static str {
        match self {
            LimitKind::Messages => "rate.messages",
            LimitKind::Calls => "rate.calls",
        }
    }
}

/// What the limiter says about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on.
    Pass,
    /// The source is blocked: drop the message unread.
    Drop,
    /// This message broke a limit: drop it, and the source is now blocked until `until_ms`.
    Blocked { limit: LimitKind, until_ms: u64 },
}

/// A token bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

impl Bucket {
    fn full(burst: f64, now_ms: u64) -> Self {
        Self {
            tokens: burst,
            at_ms: now_ms,
        }
    }

    /// Refills for the time since the last take, then takes one token if there is one.
    fn take(&mut self, rate_per_s: f64, burst: f64, now_ms: u64) -> bool {
        if rate_per_s <= 0.0 {
            return true;
        }
        let elapsed_s = now_ms.saturating_sub(self.at_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed_s * rate_per_s).min(burst.max(1.0));
        self.at_ms = now_ms;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full again by `now_ms` (the source has been quiet).
    fn refilled(&self, rate_per_s: f64, burst: f64, now_ms: u64) -> bool {
        rate_per_s <= 0.0
            || self.tokens + now_ms.saturating_sub(self.at_ms) as f64 / 1000.0 * rate_per_s >= burst
    }
}

/// One source's state.
#[derive(Debug, Clone, Copy)]
struct Source {
    messages: Bucket,
    calls: Bucket,
    blocked_until_ms: Option<u64>,
    dropped: u64,
}

/// A block that ended: the source and how many messages were dropped while it lasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unblocked {
    pub ip: IpAddr,
    pub dropped: u64,
}

/// The per-source limiter (see the module docs).
#[derive(Debug)]
pub struct SourceLimiter {
    limits: SourceLimits,
    sources: HashMap<IpAddr, Source>,
}

impl SourceLimiter {
    pub fn new(limits: SourceLimits) -> Self {
        Self {
            limits,
            sources: HashMap::new(),
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.limits.exempt.iter().any(|net| net.contains(ip))
    }

    /// Before reading a message: whether its source is blocked (then it is dropped unread).
    pub fn blocked(&mut self, now_ms: u64, ip: IpAddr) -> bool {
        let Some(source) = self.sources.get_mut(&ip) else {
            return false;
        };
        match source.blocked_until_ms {
            Some(until) if now_ms < until => {
                source.dropped += 1;
                true
            }
            _ => false,
        }
    }

    /// Counts one message from `ip` (every datagram or framed message, before it is read).
    pub fn check_message(&mut self, now_ms: u64, ip: IpAddr) -> Verdict {
        self.check(now_ms, ip, LimitKind::Messages)
    }

    /// Counts one new call from `ip` (an INVITE that opens a dialog, once it has been read).
    pub fn check_call(&mut self, now_ms: u64, ip: IpAddr) -> Verdict {
        self.check(now_ms, ip, LimitKind::Calls)
    }

    fn check(&mut self, now_ms: u64, ip: IpAddr, kind: LimitKind) -> Verdict {
        if self.exempt(ip) {
            return Verdict::Pass;
        }
        if self.blocked(now_ms, ip) {
            return Verdict::Drop;
        }
        if !self.sources.contains_key(&ip) && !self.make_room(now_ms) {
            // Every tracked source is busy: this one shares no state and passes.
            return Verdict::Pass;
        }
        let limits = &self.limits;
        let source = self.sources.entry(ip).or_insert_with(|| Source {
            messages: Bucket::full(limits.message_burst, now_ms),
            calls: Bucket::full(limits.call_burst, now_ms),
            blocked_until_ms: None,
            dropped: 0,
        });
        let within = match kind {
            LimitKind::Messages => {
                source
                    .messages
                    .take(limits.messages_per_s, limits.message_burst, now_ms)
            }
            LimitKind::Calls => source
                .calls
                .take(limits.calls_per_s, limits.call_burst, now_ms),
        };
        if within {
            return Verdict::Pass;
        }
        let until_ms = now_ms + limits.block_ms;
        source.blocked_until_ms = Some(until_ms);
        source.dropped = 0;
        Verdict::Blocked {
            limit: kind,
            until_ms,
        }
    }

    /// Frees a place in a full table by forgetting quiet sources; false when none is quiet.
    fn make_room(&mut self, now_ms: u64) -> bool {
        if self.sources.len() < self.limits.max_sources {
            return true;
        }
        let limits = &self.limits;
        self.sources.retain(|_, s| {
            s.blocked_until_ms.is_some()
                || !s
                    .messages
                    .refilled(limits.messages_per_s, limits.message_burst, now_ms)
                || !s
                    .calls
                    .refilled(limits.calls_per_s, limits.call_burst, now_ms)
        });
        self.sources.len() < self.limits.max_sources
    }

    /// When the next block ends.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.sources
            .values()
            .filter_map(|s| s.blocked_until_ms)
            .min()
    }

    /// Ends the blocks that are over by `now_ms`, each reported once.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Unblocked> {
        let mut ended = Vec::new();
        for (ip, source) in self.sources.iter_mut() {
            if source.blocked_until_ms.is_some_and(|until| now_ms >= until) {
                source.blocked_until_ms = None;
                // The block's end starts the source afresh.
                source.messages = Bucket::full(self.limits.message_burst, now_ms);
                source.calls = Bucket::full(self.limits.call_burst, now_ms);
                ended.push(Unblocked {
                    ip: *ip,
                    dropped: std::mem::take(&mut source.dropped),
                });
            }
        }
        ended
    }

    /// Sources currently blocked.
    pub fn blocked_sources(&self) -> usize {
        self.sources
            .values()
            .filter(|s| s.blocked_until_ms.is_some())
            .count()
    }
}

/// A connection cap that was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapReached {
    /// The source address has its most connections open.
    PerAddress,
    /// The server has its most connections open.
    Total,
}

/// Open stream connections (SIP over TCP or TLS, HTTP), in all and per address, with a cap on
/// each, so that one client holding many idle or half-sent connections (slowloris) cannot take
/// every descriptor. Each admitted connection holds a [`ConnectionPlace`] that gives its place
/// back when dropped. Clones share the counts.
#[derive(Debug, Clone)]
pub struct ConnectionCaps {
    open: Arc<Mutex<OpenConnections>>,
    max_per_address: usize,
    max_total: usize,
}

#[derive(Debug, Default)]
struct OpenConnections {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

impl ConnectionCaps {
    /// At most `max_per_address` connections from one address and `max_total` in all.
    pub fn new(max_per_address: usize, max_total: usize) -> Self {
        Self {
            open: Arc::new(Mutex::new(OpenConnections::default())),
            max_per_address,
            max_total,
        }
    }

    /// Takes a place for a new connection from `ip`, or says which cap it is over.
    pub fn admit(&self, ip: IpAddr) -> Result<ConnectionPlace, CapReached> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(CapReached::Total);
        }
        let mine = open.per_address.entry(ip).or_insert(0);
        if *mine >= self.max_per_address {
            return Err(CapReached::PerAddress);
        }
        *mine += 1;
        open.total += 1;
        Ok(ConnectionPlace {
            open: self.open.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |open| open.total)
    }
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct ConnectionPlace {
    open: Arc<Mutex<OpenConnections>>,
    ip: IpAddr,
}

impl Drop for ConnectionPlace {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(mine) = open.per_address.get_mut(&self.ip) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.per_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limits() -> SourceLimits {
        SourceLimits {
            messages_per_s: 10.0,
            message_burst: 20.0,
            calls_per_s: 2.0,
            call_burst: 4.0,
            block_ms: 5_000,
            max_sources: 4,
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
        }
    }

    #[test]
    fn a_call_flood_blocks_its_source_once_and_the_block_expires() {
        let mut l = SourceLimiter::new(limits());
        let bad = ip("192.0.2.1");
        let good = ip("192.0.2.2");
        let mut verdicts = Vec::new();
        for i in 0..50u64 {
            verdicts.push(match l.check_message(i, bad) {
                Verdict::Pass => l.check_call(i, bad),
                other => other,
            });
        }
        let blocks: Vec<_> = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Blocked { .. }))
            .collect();
        assert_eq!(
            blocks,
            vec![&Verdict::Blocked {
                limit: LimitKind::Calls,
                until_ms: 4 + 5_000
            }],
            "blocked once, at the fifth call"
        );
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Pass).count(), 4);
        // Another source is not touched.
        assert_eq!(l.check_call(60, good), Verdict::Pass);
        assert_eq!(l.poll_timeout(), Some(5_004));
        assert!(l.expire(5_003).is_empty());
        assert_eq!(
            l.expire(5_004),
            vec![Unblocked {
                ip: bad,
                dropped: 45
            }]
        );
        assert_eq!(l.check_call(5_005, bad), Verdict::Pass, "the block expired");
        assert_eq!(l.blocked_sources(), 0);
    }

    #[test]
    fn messages_within_the_rate_pass_for_ever() {
        let mut l = SourceLimiter::new(limits());
        let peer = ip("192.0.2.9");
        // 10 per second exactly, for a minute.
        for i in 0..600u64 {
            assert_eq!(l.check_message(i * 100, peer), Verdict::Pass, "message {i}");
        }
        // A message flood breaks the message limit.
        let mut t = 60_000;
        let blocked = loop {
            t += 1;
            if let Verdict::Blocked { limit, .. } = l.check_message(t, peer) {
                break limit;
            }
        };
        assert_eq!(blocked, LimitKind::Messages);
    }

    #[test]
    fn trusted_networks_and_off_limits_are_never_blocked() {
        let mut l = SourceLimiter::new(limits());
        for i in 0..1000u64 {
            assert_eq!(l.check_call(i, ip("10.1.2.3")), Verdict::Pass);
        }
        let mut off = SourceLimiter::new(SourceLimits {
            messages_per_s: 0.0,
            calls_per_s: 0.0,
            ..limits()
        });
        for i in 0..1000u64 {
            assert_eq!(off.check_message(i, ip("192.0.2.1")), Verdict::Pass);
            assert_eq!(off.check_call(i, ip("192.0.2.1")), Verdict::Pass);
        }
    }

    #[test]
    fn the_table_stays_bounded_under_a_spread_flood() {
        let mut l = SourceLimiter::new(limits());
        for i in 0..10_000u32 {
            let source = IpAddr::from(std::net::Ipv4Addr::from(0xC000_0000 + i));
            l.check_call(u64::from(i / 100), source);
            assert!(l.sources.len() <= 4);
        }
        // Quiet sources are forgotten to make room for new ones.
        assert_eq!(l.check_call(1_000_000, ip("198.51.100.1")), Verdict::Pass);
        assert!(l.sources.contains_key(&ip("198.51.100.1")));
    }

    #[test]
    fn connection_caps_hold_per_address_and_in_all_and_give_places_back() {
        let caps = ConnectionCaps::new(2, 3);
        let a = caps.admit(ip("192.0.2.1")).expect("first");
        let b = caps.admit(ip("192.0.2.1")).expect("second");
        assert_eq!(
            caps.admit(ip("192.0.2.1")).err(),
            Some(CapReached::PerAddress)
        );
        let c = caps.admit(ip("192.0.2.2")).expect("another address");
        assert_eq!(caps.admit(ip("192.0.2.3")).err(), Some(CapReached::Total));
        assert_eq!(caps.open(), 3);
        drop(a);
        let _d = caps.admit(ip("192.0.2.1")).expect("a place came back");
        drop((b, c));
        assert_eq!(caps.open(), 1);
    }
}
