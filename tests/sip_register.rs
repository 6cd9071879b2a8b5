//! Trunk registration through a proxy and a registrar that challenge in turn: `hotline serve`
//! against a SIPp UAS running `sip/scenarios/proxy_then_registrar.xml`. The proxy's 407 is
//! answered in Proxy-Authorization, the registrar's 401 then in Authorization with the proxy's
//! answer kept, and the refresh carries both cached answers with their nonce counts moved on.
//! SIPp checks every step (and the registrar's digest with verifyauth) and exits 0 only when
//! all of them held.

mod common;

use std::time::Duration;

use common::hotline::Hotline;
use common::sipp::{registration_config, Sipp};

#[test]
fn registers_through_a_proxy_challenge_then_a_registrar_challenge_and_refreshes() {
    let work = tempfile::tempdir().expect("tempdir");
    // A granted expiry of 4 s brings the refresh (at half of it) within the run.
    let registrar = Sipp::scenario("proxy_then_registrar.xml")
        .timeout_s(30)
        .key("username", "1001")
        .key("password", "s3cret")
        .key("expires", "4")
        .spawn(work.path());
    let mut hotline = Hotline::start(&registration_config(registrar.local_port, "s3cret"));
    let outcome = registrar.wait(Duration::from_secs(40));
    assert!(
        outcome.success,
        "the proxy and the registrar saw both challenges answered, and the refresh:\n{}\n{}",
        outcome.screen,
        hotline.log_text()
    );
    hotline.wait_for_log(
        &["trunk registration", "registered for 3600 s"],
        Duration::from_secs(10),
    );
    let log = hotline.log_text();
    assert!(
        !log.contains("registration.auth_failed") && !log.contains("registration.auth_loop"),
        "no challenge counted as a failure:\n{log}"
    );
}

#[test]
fn a_wrong_password_is_refused_after_both_challenges_and_backs_off() {
    let work = tempfile::tempdir().expect("tempdir");
    let registrar = Sipp::scenario("proxy_then_registrar.xml")
        .timeout_s(20)
        .key("username", "1001")
        .key("password", "s3cret")
        .key("expires", "60")
        .spawn(work.path());
    let mut hotline = Hotline::start(&registration_config(registrar.local_port, "wrong"));
    let outcome = registrar.wait(Duration::from_secs(30));
    assert!(!outcome.success, "a wrong password must not register");
    let line = hotline.wait_for_log(
        &["trunk registration", "registration.refused.403"],
        Duration::from_secs(10),
    );
    assert!(line.contains("retry in 5 s"), "{line}");
}
