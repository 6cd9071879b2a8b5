//! SIPp (Debian `sip-tester`) as a real SIP peer: a caller running one of this repository's
//! scenarios or a built-in one, or a registrar waiting for hotline.
//!
//! Every run gets free ports: its SIP port (`-p`) and, with [`Sipp::media`], four media ports
//! from `-mp` on. SIPp's screen goes to a file that [`SippRun::wait`] returns. SIPp's pcap
//! player writes through a raw socket, so calls that play audio need root (CI runs as root).

use std::ffi::OsString;
use std::fmt::Display;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::{free_port, free_port_range};
use super::shared::scenario;

/// A SIPp run being set up.
pub struct Sipp {
    args: Vec<OsString>,
    /// SIPp's SIP port.
    pub local_port: u16,
    /// The first of SIPp's media ports, when it has media.
    pub media_port: Option<u16>,
    timeout_s: u32,
    /// Calls to place in all (`-m`) and at most at once (`-l`).
    calls: u32,
    concurrent: u32,
}

impl Sipp {
    /// Runs `sip/scenarios/<name>`: one call (`-m 1`), on 127.0.0.1, a free SIP port.
    pub fn scenario(name: &str) -> Self {
        Self::new().arg("-sf").arg(scenario(name))
    }

    /// Runs SIPp's built-in scenario `name` (`uac`, `uas`, ...).
    pub fn builtin(name: &str) -> Self {
        Self::new().arg("-sn").arg(name)
    }

    fn new() -> Self {
        let local_port = free_port();
        Self {
            args: Vec::new(),
            local_port,
            media_port: None,
            timeout_s: 60,
            calls: 1,
            concurrent: 1,
        }
    }

    /// The SIP port SIPp listens on (`-p`), e.g. for an agent phone hotline dials.
    pub fn port(&self) -> u16 {
        self.local_port
    }

    /// The peer to call (`host:port`); a caller needs one, a registrar does not.
    pub fn remote(self, address: impl Display) -> Self {
        self.arg(address.to_string())
    }

    /// Gives SIPp media ports (RTP for `[media_port]` and pcap play) on 127.0.0.1.
    pub fn media(mut self) -> Self {
        let base = *free_port_range(4).start();
        self.media_port = Some(base);
        self.arg("-mi")
            .arg("127.0.0.1")
            .arg("-mp")
            .arg(base.to_string())
    }

    /// Sets a scenario key (`[name]`); `service` is SIPp's own `-s`.
    pub fn key(self, name: &str, value: impl Display) -> Self {
        if name == "service" {
            self.arg("-s").arg(value.to_string())
        } else {
            self.arg("-key").arg(name).arg(value.to_string())
        }
    }

    /// How long a caller that waits for the bot's move stays before it hangs up: SIPp's receive
    /// timeout (`-recv_timeout`), which `uac_utterance.xml`'s wait for a REFER ends on.
    pub fn stays_s(self, seconds: u32) -> Self {
        self.arg("-recv_timeout").arg((seconds * 1000).to_string())
    }

    /// SIP over TCP, one connection (`-t t1`).
    pub fn tcp(self) -> Self {
        self.arg("-t").arg("t1")
    }

    /// Adds a command-line argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Places `calls` calls in all, at most `concurrent` at once (a new one as soon as one ends,
    /// up to ten a second); one call by default.
    pub fn calls(mut self, calls: u32, concurrent: u32) -> Self {
        self.calls = calls;
        self.concurrent = concurrent;
        self.arg("-r").arg("10")
    }

    /// Sets SIPp's overall timeout (a timeout fails the run); 60 s by default.
    pub fn timeout_s(mut self, seconds: u32) -> Self {
        self.timeout_s = seconds;
        self
    }

    /// Starts SIPp in the background; its screen goes to a file in `work`.
    pub fn spawn(self, work: &std::path::Path) -> SippRun {
        let screen = work.join(format!("sipp-{}.log", self.local_port));
        let child = Command::new("sipp")
            .args(&self.args)
            .args(["-i", "127.0.0.1", "-nostdin"])
            .arg("-m")
            .arg(self.calls.to_string())
            .arg("-l")
            .arg(self.concurrent.to_string())
            .arg("-p")
            .arg(self.local_port.to_string())
            .arg("-timeout")
            .arg(format!("{}s", self.timeout_s))
            .arg("-timeout_error")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&screen).expect("SIPp screen file"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run sipp (Debian package sip-tester)");
        SippRun {
            child,
            screen,
            local_port: self.local_port,
        }
    }

    /// Runs SIPp to the end (at most its timeout and ten seconds more) and fails unless it
    /// succeeded; returns the end of its screen.
    pub fn run_ok(self, work: &std::path::Path) -> String {
        let within = Duration::from_secs(self.timeout_s as u64 + 10);
        let outcome = self.spawn(work).wait(within);
        assert!(
            outcome.success,
            "sipp failed (its pcap player needs root):\n{}",
            outcome.screen
        );
        outcome.screen
    }
}

/// A caller who plays `pcap` (`uac_utterance.xml`): it accepts the bot's transfer (REFER) if one
/// comes, and hangs up [`CALLER_STAYS_S`] after the answer otherwise ([`Sipp::stays_s`]).
pub fn utterance_caller(pcap: &std::path::Path) -> Sipp {
    Sipp::scenario("uac_utterance.xml")
        .key("pcap", pcap.display())
        .stays_s(CALLER_STAYS_S)
}

/// How long an [`utterance_caller`] stays on a call that is not transferred.
pub const CALLER_STAYS_S: u32 = 14;

/// A caller who asks for customer support: an [`utterance_caller`] to `target`'s `support`
/// service in G.711 µ-law, playing `pcap` (it speaks over the greeting).
pub fn support_caller(target: impl Display, pcap: &std::path::Path) -> Sipp {
    utterance_caller(pcap)
        .remote(target)
        .media()
        .key("service", "support")
        .key("codec_pt", super::pcap::PT_PCMU)
        .key("codec_name", "PCMU")
}

/// A running SIPp; killed when dropped before it ends.
pub struct SippRun {
    child: Child,
    screen: PathBuf,
    pub local_port: u16,
}

/// How a SIPp run ended.
#[derive(Debug)]
pub struct SippOutcome {
    /// Exit status 0: every call of the scenario succeeded.
    pub success: bool,
    /// The end of SIPp's screen (its statistics and errors).
    pub screen: String,
}

impl SippOutcome {
    /// A cumulative count from SIPp's final statistics (`"Successful call"`, `"Failed call"`).
    pub fn count(&self, row: &str) -> u64 {
        self.screen
            .lines()
            .rfind(|line| line.trim_start().starts_with(row))
            .and_then(|line| line.split('|').nth(2))
            .and_then(|cell| cell.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl SippRun {
    /// Asks SIPp to stop smoothly (SIGUSR1): it places no new call, lets the calls under way
    /// run to their end, then exits with its final statistics.
    pub fn stop_placing_calls(&self) {
        let status = Command::new("kill")
            .args(["-USR1", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "SIGUSR1 to SIPp failed");
    }

    /// Kills SIPp at once (SIGKILL): its calls under way vanish without a BYE, as a caller
    /// whose phone loses power.
    pub fn vanish(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether SIPp has exited.
    pub fn finished(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Waits for SIPp to finish (killing it after `within`).
    pub fn wait(mut self, within: Duration) -> SippOutcome {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let screen = std::fs::read_to_string(&self.screen).unwrap_or_default();
        let mut start = screen.len().saturating_sub(4000);
        while !screen.is_char_boundary(start) {
            start += 1;
        }
        let tail = screen[start..].to_string();
        SippOutcome {
            success: status.is_some_and(|s| s.success()),
            screen: tail,
        }
    }
}

impl Drop for SippRun {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// hotline's `[sip]` body for registering as 1001 (with `password`) at a SIPp registrar on
/// `registrar_port`, with free RTP ports.
pub fn registration_config(registrar_port: u16, password: &str) -> String {
    format!(
        "port = 0\n{}\
         [sip.registration]\nregistrar = \"127.0.0.1:{registrar_port}\"\nusername = \"1001\"\n\
         password = \"{password}\"\nexpires_s = 300\n",
        crate::common::ports::RtpPorts::free(2).toml()
    )
}
