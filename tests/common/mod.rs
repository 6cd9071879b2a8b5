//! The test harness every integration test shares: where the shared test data lives, free
//! ports, a running hotline (as a `hotline serve` process or in this process), real SIP peers
//! (SIPp and baresip), caller speech made with espeak-ng, RTP packets and pcap files for SIPp to play, a media relay that stands in
//! for a NAT in front of hotline's RTP ports, and readers for call records.
//!
//! Use it from a test file with `mod common;` (each test binary compiles all of it, hence the
//! `dead_code` allowance). Invariants: nothing here picks a fixed port: SIP, SIPp and baresip
//! ports come from [`ports::free_port`] and RTP ranges from [`ports::free_port_range`], so test
//! binaries can run at the same time; every process started here is stopped when its handle
//! drops; shared data is found through `HOTLINE_SHARED` and a missing folder fails with a
//! message that says so.

#![allow(dead_code)]

pub mod baresip;
pub mod hotline;
pub mod pcap;
pub mod ports;
pub mod records;
pub mod relay;
pub mod shared;
pub mod sipp;
pub mod speech;
pub mod store;

/// One at a time within a test binary: the guard of a call (or recognizer) that must not share
/// this two-core machine with another of the same binary's tests. Two hotlines recognising at
/// once starve each other's media tasks and garble the words the tests look for, and whisper.cpp's
/// threads spin while they wait. Tolerates a poisoned lock (a failed test before).
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
