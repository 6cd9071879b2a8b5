//! What the measuring benches share: where the shared recordings are, and the demo flow's menu.

use std::path::{Path, PathBuf};

use hotline::asr::Grammar;
use hotline::audio::resample::resample;
use hotline::dialogue::config::DialogueConfig;
use hotline::dialogue::{factory_from_config, plan_flow_arg, CallContext, CallerInput};

/// The shared test data (`$HOTLINE_SHARED`, else `../shared` beside the repository).
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("HOTLINE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    assert!(
        dir.join("audio/index.tsv").is_file(),
        "shared test data not found at {} (set HOTLINE_SHARED)",
        dir.display()
    );
    dir
}

#[allow(dead_code)] // not every bench that shares this module waits on the menu
/// The demo telecom flow's grammar for its first answer (the main menu), which a call to the
/// demo flow waits on while the bot greets it.
pub fn menu_grammar() -> Option<Grammar> {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    let config = DialogueConfig {
        flows_dir: assets.join("flows"),
        kb_dir: assets.join("kb"),
        ..DialogueConfig::default()
    };
    let factory = factory_from_config(&config, None).ok()?;
    let plan = plan_flow_arg(factory.as_ref(), Some("telecom_en")).ok()?;
    let ctx = CallContext {
        plan,
        vars: Default::default(),
    };
    factory
        .new_dialogue(&ctx)
        .handle(&CallerInput::Start)
        .expect
}

#[allow(dead_code)] // not every bench that shares this module plays phone audio
/// The recording as a phone caller's arrives: 8 kHz G.711 µ-law, back to 16 kHz.
pub fn through_g711(pcm: &[i16]) -> Vec<i16> {
    use hotline_media::codec::g711::G711Law;
    let narrow = resample(pcm, 16_000, 8_000).expect("resample to 8 kHz");
    let law = G711Law::Ulaw;
    let mut wide =
        resample(&law.decode_slice(&law.encode_slice(&narrow)), 8_000, 16_000).expect("resample");
    wide.resize(pcm.len(), 0);
    wide
}
