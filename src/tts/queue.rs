//! The reply queue in front of the one synthesis worker: which reply's next unit the worker
//! takes, and what a cancelled reply leaves behind. Sans-IO: no threads, channels or clocks.
//! The worker (`worker.rs`) drives it under one mutex, and [`super::Speech`] tells it what its
//! listener has received.
//!
//! Policy of [`SpeechQueue::take`]:
//! 1. A cancelled reply is gone before anything is chosen: [`SpeechQueue::cancel`] removes it at
//!    once, and its queued units are counted as dropped and never started.
//! 2. A reply that has not started yet (its caller hears silence) goes first, oldest first.
//! 3. Otherwise replies take turns, one unit each, so a long answer on one call does not hold
//!    back the next sentence of another.
//! 4. A reply runs at most `lookahead` items ahead of its listener: its next unit waits until the
//!    listener has received what was sent. With a lookahead of one, the sentence after the one
//!    playing is synthesized while it plays, and a reply that nobody reads (or that was barged
//!    in but not yet cancelled) costs at most one sentence of work.
//!
//! Invariants: at most one unit is in flight (`take` returns nothing until `finish`); a reply's
//! units are taken in order, each at most once; a reply leaves the queue when its last unit is
//! taken (its sink goes with that unit to the worker) or when it is cancelled (its sink is
//! dropped), so a stream closes right after its final item; and every queued unit is counted
//! once, as started or as dropped.

use std::collections::VecDeque;

use super::CancelToken;
use crate::language::Language;

/// One unit of a reply, in speaking order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Unit {
    /// A sentence to synthesize.
    Sentence(String),
    /// A recorded prompt, and its words to speak if the file cannot be played.
    File { file: String, text: String },
}

/// A reply in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct JobId(u64);

/// Counters over the life of a [`super::TtsService`], for tests and dashboards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtsStats {
    /// Replies queued (a reply with nothing to say is not queued).
    pub replies: u64,
    /// Units queued: sentences and recorded prompts.
    pub units_queued: u64,
    /// Units the worker started.
    pub units_started: u64,
    /// Units of cancelled replies removed from the queue before they started.
    pub units_dropped: u64,
    /// Sentences the engine synthesized to the end (cache misses).
    pub sentences_synthesized: u64,
    /// Sentences whose synthesis a cancel stopped, mid-sentence or before the engine began.
    pub sentences_aborted: u64,
    /// Units finished after their reply was cancelled; their audio was thrown away.
    pub units_discarded: u64,
    /// Units served from the cache (sentences and prompt files).
    pub cache_hits: u64,
    /// Items (audio or errors) handed to listeners.
    pub items_sent: u64,
}

/// What the worker did with one unit, for [`SpeechQueue::finish`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct UnitReport {
    /// Items the worker is about to send (audio and errors).
    pub items_sent: u64,
    /// Engine runs that completed.
    pub synthesized: u64,
    /// Engine runs a cancel stopped.
    pub aborted: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// The unit finished after its reply was cancelled, and nothing was sent.
    pub discarded: bool,
}

/// One unit for the worker: what to say, and where its audio goes.
#[derive(Debug)]
pub(crate) struct Work<S> {
    pub job: JobId,
    pub unit: Unit,
    /// Whether this is the reply's final unit (its chunk is marked `last`).
    pub last: bool,
    pub language: Language,
    /// The reply's cancel token, for the engine to poll while it works.
    pub cancel: CancelToken,
    /// The reply's sink; for the final unit, the only one left.
    pub sink: S,
}

/// A reply waiting for the worker.
#[derive(Debug)]
struct Job<S> {
    id: JobId,
    language: Language,
    units: VecDeque<Unit>,
    /// Units taken so far.
    started: usize,
    /// Items sent to, and received by, the listener (monotonic, so their order cannot matter).
    sent: u64,
    received: u64,
    cancel: CancelToken,
    sink: S,
}

impl<S> Job<S> {
    fn ready(&self, lookahead: u64) -> bool {
        !self.cancel.is_cancelled() && self.sent.saturating_sub(self.received) < lookahead
    }
}

/// The queue of replies; `S` is where a reply's items go (a channel sender in the service).
#[derive(Debug)]
pub(crate) struct SpeechQueue<S> {
    /// Replies with units left, in turn order: a served reply moves to the back.
    jobs: VecDeque<Job<S>>,
    lookahead: u64,
    next_id: u64,
    in_flight: Option<JobId>,
    stats: TtsStats,
}

impl<S: Clone> SpeechQueue<S> {
    /// An empty queue whose replies run at most `lookahead` items (at least one) ahead of
    /// their listeners.
    pub fn new(lookahead: usize) -> Self {
        Self {
            jobs: VecDeque::new(),
            lookahead: lookahead.max(1) as u64,
            next_id: 0,
            in_flight: None,
            stats: TtsStats::default(),
        }
    }

    /// Queues a reply. A reply without units is not kept: its sink is dropped at once.
    pub fn push(
        &mut self,
        units: Vec<Unit>,
        language: Language,
        cancel: CancelToken,
        sink: S,
    ) -> JobId {
        let id = JobId(self.next_id);
        self.next_id += 1;
        if units.is_empty() {
            return id;
        }
        self.stats.replies += 1;
        self.stats.units_queued += units.len() as u64;
        self.jobs.push_back(Job {
            id,
            language,
            units: units.into(),
            started: 0,
            sent: 0,
            received: 0,
            cancel,
            sink,
        });
        id
    }

    /// Removes a cancelled reply with its queued units; answers how many were dropped. A unit
    /// of it in flight is the worker's to abort.
    pub fn cancel(&mut self, id: JobId) -> usize {
        match self.jobs.iter().position(|job| job.id == id) {
            Some(index) => {
                let dropped = self.jobs.remove(index).map_or(0, |job| job.units.len());
                self.stats.units_dropped += dropped as u64;
                dropped
            }
            None => 0,
        }
    }

    /// The listener of `id` received one item; answers whether the reply may now go on.
    pub fn received(&mut self, id: JobId) -> bool {
        let lookahead = self.lookahead;
        match self.jobs.iter_mut().find(|job| job.id == id) {
            Some(job) => {
                job.received += 1;
                job.ready(lookahead)
            }
            None => false,
        }
    }

    /// The next unit for the worker, by the policy in the module docs; `None` while a unit is
    /// in flight or no reply may go on.
    pub fn take(&mut self) -> Option<Work<S>> {
        self.reap_cancelled();
        if self.in_flight.is_some() {
            return None;
        }
        let lookahead = self.lookahead;
        let index = self
            .jobs
            .iter()
            .position(|job| job.started == 0 && job.ready(lookahead))
            .or_else(|| self.jobs.iter().position(|job| job.ready(lookahead)))?;
        let mut job = self.jobs.remove(index)?;
        let Some(unit) = job.units.pop_front() else {
            // Never stored empty (push and take keep it so); forget it if it happens.
            return None;
        };
        job.started += 1;
        self.in_flight = Some(job.id);
        self.stats.units_started += 1;
        let last = job.units.is_empty();
        let work = Work {
            job: job.id,
            unit,
            last,
            language: job.language,
            cancel: job.cancel.clone(),
            sink: job.sink.clone(),
        };
        if !last {
            self.jobs.push_back(job);
        }
        Some(work)
    }

    /// The unit in flight for `id` is done; `report` says how, and how many items it sends.
    pub fn finish(&mut self, id: JobId, report: UnitReport) {
        debug_assert_eq!(self.in_flight, Some(id), "finish of a unit not in flight");
        self.in_flight = None;
        if let Some(job) = self.jobs.iter_mut().find(|job| job.id == id) {
            job.sent += report.items_sent;
        }
        let stats = &mut self.stats;
        stats.items_sent += report.items_sent;
        stats.sentences_synthesized += report.synthesized;
        stats.sentences_aborted += report.aborted;
        stats.cache_hits += report.cache_hits;
        stats.units_discarded += u64::from(report.discarded);
    }

    /// Removes every reply (the worker has stopped) and hands back their sinks; their units
    /// count as dropped.
    pub fn drain(&mut self) -> Vec<S> {
        let jobs: Vec<Job<S>> = self.jobs.drain(..).collect();
        self.stats.units_dropped += jobs.iter().map(|job| job.units.len() as u64).sum::<u64>();
        jobs.into_iter().map(|job| job.sink).collect()
    }

    /// Whether nothing is queued or in flight.
    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty() && self.in_flight.is_none()
    }

    /// The counters so far.
    pub fn stats(&self) -> TtsStats {
        self.stats
    }

    /// Drops replies whose token was cancelled without [`Self::cancel`].
    fn reap_cancelled(&mut self) {
        let stats = &mut self.stats;
        self.jobs.retain(|job| {
            let keep = !job.cancel.is_cancelled();
            if !keep {
                stats.units_dropped += job.units.len() as u64;
            }
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentences(n: usize, tag: &str) -> Vec<Unit> {
        (0..n)
            .map(|i| Unit::Sentence(format!("{tag}{i}")))
            .collect()
    }

    fn text(work: &Work<&'static str>) -> String {
        match &work.unit {
            Unit::Sentence(text) => text.clone(),
            Unit::File { file, .. } => file.clone(),
        }
    }

    /// Takes the next unit and finishes it at once, as if it sent one item.
    fn serve(queue: &mut SpeechQueue<&'static str>) -> Option<String> {
        let work = queue.take()?;
        let name = text(&work);
        queue.finish(
            work.job,
            UnitReport {
                items_sent: 1,
                synthesized: 1,
                ..UnitReport::default()
            },
        );
        Some(name)
    }

    #[test]
    fn a_cancelled_reply_drops_its_queued_units_and_the_next_reply_goes_at_once() {
        let mut queue = SpeechQueue::new(1);
        let old_token = CancelToken::new();
        let old = queue.push(sentences(5, "old"), Language::En, old_token.clone(), "old");
        let first = queue.take().expect("old's first sentence");
        assert_eq!(text(&first), "old0");
        assert!(!first.last);
        assert!(queue.take().is_none(), "one unit in flight at a time");
        queue.finish(
            first.job,
            UnitReport {
                items_sent: 1,
                ..UnitReport::default()
            },
        );
        queue.received(old);
        let second = queue.take().expect("old's second sentence");
        assert_eq!(text(&second), "old1");

        // Cancelled with its second sentence in flight: the three queued ones go at once.
        old_token.cancel();
        assert_eq!(queue.cancel(old), 3);
        assert_eq!(queue.stats().units_dropped, 3);
        let new = queue.push(sentences(2, "new"), Language::En, CancelToken::new(), "new");
        assert!(
            queue.take().is_none(),
            "the in-flight unit finishes (or aborts) first"
        );
        queue.finish(
            second.job,
            UnitReport {
                aborted: 1,
                ..UnitReport::default()
            },
        );
        let next = queue.take().expect("the new reply");
        assert_eq!((text(&next), next.sink), ("new0".to_string(), "new"));
        queue.finish(
            next.job,
            UnitReport {
                items_sent: 1,
                ..UnitReport::default()
            },
        );
        queue.received(new);
        let last = queue.take().expect("the new reply's last unit");
        assert!(last.last);
        queue.finish(last.job, UnitReport::default());
        assert!(queue.take().is_none() && queue.is_idle());

        let stats = queue.stats();
        assert_eq!(stats.units_queued, 7);
        assert_eq!(stats.units_started, 4);
        assert_eq!(
            stats.units_started + stats.units_dropped,
            stats.units_queued
        );
        assert_eq!(stats.sentences_aborted, 1);
        // Cancelling again, or after the end, drops nothing more.
        assert_eq!(queue.cancel(old), 0);
        assert_eq!(queue.cancel(new), 0);
    }

    #[test]
    fn a_token_cancelled_elsewhere_is_reaped_before_the_next_take() {
        let mut queue = SpeechQueue::new(1);
        let token = CancelToken::new();
        queue.push(sentences(3, "a"), Language::En, token.clone(), "a");
        token.cancel();
        assert!(queue.take().is_none());
        assert!(queue.is_idle());
        assert_eq!(queue.stats().units_dropped, 3);
    }

    #[test]
    fn new_replies_go_first_then_replies_take_turns() {
        let mut queue = SpeechQueue::new(8);
        let a = queue.push(sentences(3, "a"), Language::En, CancelToken::new(), "a");
        assert_eq!(serve(&mut queue).as_deref(), Some("a0"));
        let _b = queue.push(sentences(3, "b"), Language::En, CancelToken::new(), "b");
        let _c = queue.push(sentences(1, "c"), Language::En, CancelToken::new(), "c");
        let order: Vec<String> = std::iter::from_fn(|| serve(&mut queue)).collect();
        // b and c have not started: they go before a's second sentence, oldest first; then
        // the replies alternate.
        assert_eq!(order, ["b0", "c0", "a1", "b1", "a2", "b2"]);
        assert!(queue.is_idle());
        assert!(!queue.received(a), "a finished and left the queue");
    }

    #[test]
    fn a_reply_waits_for_its_listener_beyond_the_lookahead() {
        let mut queue = SpeechQueue::new(1);
        let slow = queue.push(sentences(3, "slow"), Language::En, CancelToken::new(), "s");
        assert_eq!(serve(&mut queue).as_deref(), Some("slow0"));
        assert!(queue.take().is_none(), "slow0 is not received yet");
        // Another call's reply is not held up by the slow listener.
        queue.push(sentences(1, "other"), Language::En, CancelToken::new(), "o");
        assert_eq!(serve(&mut queue).as_deref(), Some("other0"));
        assert!(queue.received(slow), "received: slow may go on");
        assert_eq!(serve(&mut queue).as_deref(), Some("slow1"));
        // The listener's receipt may be counted before the worker's send (monotonic counters).
        assert!(queue.take().is_none());
        queue.received(slow);
        assert_eq!(serve(&mut queue).as_deref(), Some("slow2"));
        assert!(queue.is_idle());
    }

    #[test]
    fn the_final_unit_carries_the_sink_and_empty_replies_are_not_queued() {
        let mut queue = SpeechQueue::new(1);
        queue.push(Vec::new(), Language::Zh, CancelToken::new(), "empty");
        assert!(queue.is_idle());
        assert_eq!(queue.stats().replies, 0);
        queue.push(
            vec![Unit::File {
                file: "hold.wav".into(),
                text: "Please hold.".into(),
            }],
            Language::Zh,
            CancelToken::new(),
            "one",
        );
        let work = queue.take().expect("the prompt");
        assert!(work.last && work.language == Language::Zh);
        assert!(!queue.is_idle(), "in flight until finished");
        queue.finish(work.job, UnitReport::default());
        assert!(queue.is_idle());
    }

    #[test]
    fn drain_hands_back_every_sink() {
        let mut queue = SpeechQueue::new(1);
        queue.push(sentences(2, "a"), Language::En, CancelToken::new(), "a");
        queue.push(sentences(1, "b"), Language::En, CancelToken::new(), "b");
        assert_eq!(queue.drain(), ["a", "b"]);
        assert_eq!(queue.stats().units_dropped, 3);
        assert!(queue.is_idle());
    }
}
