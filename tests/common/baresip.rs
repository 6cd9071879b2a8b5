//! baresip (Debian `baresip-core`) as a real softphone caller.
//!
//! It plays a WAV as its microphone (`aufile`; the WAV must match the codec exactly, 8 kHz mono
//! 16-bit for G.711), writes what it sent and what it heard (`sndfile`: `*-enc.wav`,
//! `*-dec.wav`), plays the call to ALSA's null device (there is no sound card here), and quits
//! after a set time. baresip refuses `net_interface lo`, so `sip_listen` pins it to loopback on
//! a free port (it binds the port above too); its RTP ports come from a free range.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::ports::free_port_range;

/// One baresip call to set up.
pub struct BaresipCall<'a> {
    /// What to dial, e.g. `sip:bot@127.0.0.1:5060`.
    pub target: String,
    /// The microphone: a WAV matching the codec (8 kHz mono 16-bit for PCMU/PCMA).
    pub source_wav: &'a Path,
    /// The account's codecs, e.g. `PCMU`.
    pub codecs: &'a str,
    /// More modules to load, e.g. `rtcpsummary.so`.
    pub extra_modules: &'a [&'a str],
    /// baresip quits this long after it starts (`-t`).
    pub quit_after_s: u32,
    /// For SIP over TLS: the certificate baresip trusts (`sip_cafile`).
    pub tls_ca: Option<&'a Path>,
    /// More account parameters, e.g. `;mediaenc=srtp-mand`.
    pub account_params: &'a str,
}

/// What a finished baresip run left.
pub struct BaresipOutcome {
    /// Its screen (info log).
    pub screen: String,
    /// Where `sndfile` wrote `*-enc.wav` (sent) and `*-dec.wav` (heard).
    pub dumps: PathBuf,
}

impl BaresipOutcome {
    /// Fails unless baresip's call was answered; `peer_log` (hotline's log) goes in the message.
    pub fn assert_established(&self, peer_log: &str) {
        assert!(
            self.screen.contains("Call established"),
            "hotline answered baresip:\n{}\n{peer_log}",
            self.screen
        );
    }

    /// The file `sndfile` wrote whose name ends with `suffix` (`-enc.wav` or `-dec.wav`).
    pub fn dump(&self, suffix: &str) -> PathBuf {
        std::fs::read_dir(&self.dumps)
            .expect("baresip dumps folder")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("baresip wrote no *{suffix}:\n{}", self.screen))
    }
}

impl BaresipCall<'_> {
    /// Runs baresip in `work` until it quits (killed after `quit_after_s` + 35 s).
    pub fn run(&self, work: &Path) -> BaresipOutcome {
        let sip_port = *free_port_range(2).start();
        let rtp = free_port_range(10);
        let config_dir = work.join("baresip");
        let dumps = work.join("heard");
        std::fs::create_dir_all(&config_dir).expect("baresip dir");
        std::fs::create_dir_all(&dumps).expect("dump dir");
        let mut extra: String = self
            .extra_modules
            .iter()
            .map(|m| format!("module {m}\n"))
            .collect();
        if let Some(ca) = self.tls_ca {
            extra.push_str(&format!("sip_cafile {}\n", ca.display()));
        }
        std::fs::write(
            config_dir.join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{sip_port}\nsip_trans_def udp\n\
                 module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\n\
                 module sndfile.so\nmodule alsa.so\n{extra}module_app account.so\n\
                 module_app menu.so\naudio_player alsa,null\naudio_alert alsa,null\n\
                 audio_source aufile,{}\nrtp_ports {}-{}\nsnd_path {}\n",
                self.source_wav.display(),
                rtp.start(),
                rtp.end(),
                dumps.display()
            ),
        )
        .expect("baresip config");
        std::fs::write(
            config_dir.join("accounts"),
            format!(
                "<sip:caller@127.0.0.1>;regint=0;audio_codecs={}{}\n",
                self.codecs, self.account_params
            ),
        )
        .expect("baresip accounts");
        let screen = work.join("baresip.log");
        let mut baresip = Command::new("baresip")
            .arg("-f")
            .arg(&config_dir)
            .args([
                "-e",
                &format!("/dial {}", self.target),
                "-t",
                &self.quit_after_s.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&screen).expect("baresip log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("run baresip (Debian package baresip-core)");
        let deadline = Instant::now() + Duration::from_secs(self.quit_after_s as u64 + 35);
        while baresip.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = baresip.kill();
                let _ = baresip.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        BaresipOutcome {
            screen: std::fs::read_to_string(&screen).unwrap_or_default(),
            dumps,
        }
    }
}

/// The caller recording as baresip's `aufile` wants it for G.711: 8 kHz mono 16-bit, with
/// `lead_s` of silence before and `tail_s` after (made with sox).
pub fn g711_source_wav(recording: &Path, out: &Path, lead_s: u32, tail_s: u32) {
    let sox = Command::new("sox")
        .arg(recording)
        .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer"])
        .arg(out)
        .args(["pad", &lead_s.to_string(), &tail_s.to_string()])
        .status()
        .expect("run sox (Debian package sox)");
    assert!(sox.success(), "sox converts {}", recording.display());
}
