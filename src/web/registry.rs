//! The live WebRTC calls: their command channels and their event logs.
//!
//! Each call has an [`EventLog`]: every event (the call's own JSON events, as in `events.jsonl`,
//! plus the transport's `peer_state` and `call_ended`) is appended to a backlog and broadcast.
//! A page that subscribes late (its WebSocket opens after the greeting) gets the backlog first
//! and then the live stream, with nothing missed or repeated: both happen under one lock.
//!
//! Invariants: a call is in the registry from its answer until its driver ends; `call_ended` is
//! the last event of every log; a [`WebCallSlot`] frees the call's place (and the registry
//! entry) when dropped, however the driver ends.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

/// The type of the last event in every call's log.
pub const CALL_ENDED: &str = "call_ended";
/// Live events buffered per subscriber before it counts as lagging.
const BROADCAST_CAPACITY: usize = 256;
/// The most events kept for late subscribers (a long call's partials are many).
const MAX_BACKLOG: usize = 2_000;

/// What the page asks of a live call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageCommand {
    /// A keypad press.
    Dtmf(char),
    /// The caller pressed hang up.
    Hangup,
}

/// One call's events, kept and broadcast as JSON lines.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<EventLogInner>,
}

#[derive(Debug)]
struct EventLogInner {
    backlog: Vec<Arc<str>>,
    live: broadcast::Sender<Arc<str>>,
    ended: bool,
}

/// A subscription: the events so far, then the live receiver.
pub struct EventSubscription {
    pub backlog: Vec<Arc<str>>,
    /// `None` when the call has already ended (the backlog is complete).
    pub live: Option<broadcast::Receiver<Arc<str>>>,
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Mutex::new(EventLogInner {
                backlog: Vec::new(),
                live,
                ended: false,
            }),
        }
    }

    /// Appends one JSON event; after `call_ended`, nothing more is taken.
    pub fn push(&self, json: String) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.ended {
            return;
        }
        let json: Arc<str> = json.into();
        if inner.backlog.len() < MAX_BACKLOG {
            inner.backlog.push(json.clone());
        }
        let _ = inner.live.send(json);
    }

    /// Appends the final `call_ended` event.
    pub fn end(&self, json: String) {
        self.push(json);
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).ended = true;
    }

    /// The backlog and, while the call lives, the live stream.
    pub fn subscribe(&self) -> EventSubscription {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        EventSubscription {
            backlog: inner.backlog.clone(),
            live: (!inner.ended).then(|| inner.live.subscribe()),
        }
    }
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// What the registry keeps per call.
#[derive(Debug, Clone)]
pub struct WebCallEntry {
    pub commands: mpsc::Sender<PageCommand>,
    pub events: Arc<EventLog>,
}

/// The live WebRTC calls and the count of running call drivers.
#[derive(Debug, Default)]
pub struct WebCalls {
    calls: Mutex<HashMap<String, WebCallEntry>>,
    drivers: AtomicUsize,
}

impl WebCalls {
    /// Adds a call; the returned slot removes it when dropped.
    pub fn insert(self: &Arc<Self>, id: String, entry: WebCallEntry) -> WebCallSlot {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), entry);
        self.drivers.fetch_add(1, Ordering::SeqCst);
        WebCallSlot {
            calls: Arc::clone(self),
            id,
        }
    }

    /// A live call by id.
    pub fn get(&self, id: &str) -> Option<WebCallEntry> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Calls in the registry.
    pub fn len(&self) -> usize {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Call driver tasks still running.
    pub fn drivers(&self) -> usize {
        self.drivers.load(Ordering::SeqCst)
    }

    /// The ids of live calls.
    pub fn ids(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// A call's place in the registry, held by its driver task.
#[derive(Debug)]
pub struct WebCallSlot {
    calls: Arc<WebCalls>,
    id: String,
}

impl Drop for WebCallSlot {
    fn drop(&mut self) {
        self.calls
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.calls.drivers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_late_subscriber_gets_backlog_then_live_without_gaps() {
        let log = EventLog::new();
        log.push("{\"type\":\"call_start\"}".into());
        let sub = log.subscribe();
        log.push("{\"type\":\"bot_reply\"}".into());
        log.end("{\"type\":\"call_ended\"}".into());
        log.push("{\"type\":\"after\"}".into());
        assert_eq!(sub.backlog.len(), 1);
        let mut live = sub.live.expect("live while the call runs");
        assert_eq!(
            &*live.recv().await.expect("reply"),
            "{\"type\":\"bot_reply\"}"
        );
        assert_eq!(
            &*live.recv().await.expect("end"),
            "{\"type\":\"call_ended\"}"
        );
        assert!(live.try_recv().is_err(), "nothing after call_ended");
        let after = log.subscribe();
        assert!(after.live.is_none());
        assert_eq!(after.backlog.len(), 3);
    }

    #[test]
    fn dropping_the_slot_removes_the_call() {
        let calls = Arc::new(WebCalls::default());
        let (tx, _rx) = mpsc::channel(1);
        let slot = calls.insert(
            "c1".into(),
            WebCallEntry {
                commands: tx,
                events: Arc::default(),
            },
        );
        assert_eq!((calls.len(), calls.drivers()), (1, 1));
        assert!(calls.get("c1").is_some());
        drop(slot);
        assert_eq!((calls.len(), calls.drivers()), (0, 0));
    }
}
