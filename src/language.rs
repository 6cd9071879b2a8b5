//! The languages hotline speaks and hears.

use serde::{Deserialize, Serialize};

/// A caller-facing language. ASR, TTS, flows and knowledge bases are chosen per language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    #[default]
    En,
    /// Mandarin Chinese.
    Zh,
}

impl Language {
    /// The ISO 639-1 code, as whisper and the config use it.
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
        }
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Language::En),
            "zh" => Ok(Language::Zh),
            other => Err(format!(
                "unknown language {other:?} (expected \"en\" or \"zh\")"
            )),
        }
    }
}

/// Mandarin text in simplified characters, as callers and flows write it. whisper often
/// writes traditional characters (開始通車 for 开始通车); this maps them one to one, and
/// leaves everything else as it is.
pub fn to_simplified(text: &str) -> String {
    simplet2s::convert(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn traditional_characters_become_simplified() {
        assert_eq!(
            super::to_simplified("恭喜發財，開始通車"),
            "恭喜发财，开始通车"
        );
        assert_eq!(super::to_simplified("你好 hello"), "你好 hello");
    }
}
