//! The optional LLM: an OpenAI-compatible chat-completions client with streaming, used as a
//! fallback answerer grounded in the knowledge base and, when configured, as an intent
//! extractor. Off by default; nothing else needs it.
//!
//! Answers stream: each `data:` line of the server-sent events carries a delta, the deltas are
//! cut into sentences by [`SentenceSplitter`], and each finished sentence goes to the caller's
//! callback at once (so TTS can start on the first sentence). The whole request is bounded by
//! `timeout_ms`; on a timeout or error the dialogue speaks its fallback prompt instead.
//! The API key comes from the environment variable the config names and is never logged.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use super::kb::KbEntry;
use crate::language::Language;

pub use super::config::LlmConfig;

/// Why the LLM gave no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("llm.timeout: no complete answer in time")]
    Timeout,
    #[error("llm.http: {0}")]
    Http(String),
    #[error("llm.protocol: {0}")]
    Protocol(String),
}

/// Cuts streamed text into sentences as they complete.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buf: String,
}

impl SentenceSplitter {
    /// Adds a piece of text; returns the sentences it completed.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.buf.push_str(piece);
        let mut out = Vec::new();
        loop {
            let chars: Vec<(usize, char)> = self.buf.char_indices().collect();
            let mut cut = None;
            for (i, &(pos, c)) in chars.iter().enumerate() {
                let end = pos + c.len_utf8();
                if matches!(c, '。' | '！' | '？' | '；') {
                    cut = Some(end);
                    break;
                }
                if matches!(c, '.' | '!' | '?') {
                    // A Latin full stop ends a sentence only before whitespace ("3.5" does not).
                    match chars.get(i + 1) {
                        Some((_, next)) if next.is_whitespace() => {
                            cut = Some(end);
                            break;
                        }
                        _ => {}
                    }
                }
            }
            let Some(end) = cut else { break };
            let sentence = self.buf[..end].trim().to_string();
            self.buf = self.buf[end..].to_string();
            if !sentence.is_empty() {
                out.push(sentence);
            }
        }
        out
    }

    /// The text left when the stream ends.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf).trim().to_string();
        (!rest.is_empty()).then_some(rest)
    }
}

/// A chat-completions client.
#[derive(Debug, Clone)]
pub struct LlmClient {
    config: LlmConfig,
}

impl LlmClient {
    pub fn new(config: LlmConfig) -> Self {
        Self { config }
    }

    /// Whether the LLM is also asked for intents.
    pub fn extracts_intents(&self) -> bool {
        self.config.extract_intents
    }

    fn request(&self, body: serde_json::Value) -> Result<ureq::Response, LlmError> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .build();
        let url = format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut req = agent.post(&url).set("Content-Type", "application/json");
        if let Ok(key) = std::env::var(&self.config.api_key_env) {
            if !key.is_empty() {
                req = req.set("Authorization", &format!("Bearer {key}"));
            }
        }
        req.send_string(&body.to_string()).map_err(|e| match e {
            ureq::Error::Status(code, _) => LlmError::Http(format!("HTTP {code}")),
            ureq::Error::Transport(t) => {
                if t.to_string().contains("timed out") {
                    LlmError::Timeout
                } else {
                    LlmError::Http(format!("{:?}", t.kind()))
                }
            }
        })
    }

    /// Streams an answer grounded in `passages`; each finished sentence goes to `on_sentence`.
    /// Returns the whole answer.
    pub fn answer(
        &self,
        question: &str,
        passages: &[&KbEntry],
        language: Language,
        on_sentence: &mut dyn FnMut(&str),
    ) -> Result<String, LlmError> {
        let mut context = String::new();
        for (i, p) in passages.iter().enumerate() {
            context.push_str(&format!("[{}] Q: {}\nA: {}\n", i + 1, p.question, p.answer));
        }
        let system = match language {
            Language::En => format!(
                "You are a phone support assistant. Answer in one or two short spoken sentences, \
                 using only these passages. If they do not answer the question, say you don't \
                 know.\n{context}"
            ),
            Language::Zh => format!(
                "你是电话客服助手。只根据下面的资料，用一两句简短的话回答。资料里没有答案就说不知道。\n{context}"
            ),
        };
        let body = serde_json::json!({
            "model": self.config.model,
            "stream": true,
            "max_tokens": self.config.max_tokens,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ],
        });
        let response = self.request(body)?;
        let reader = BufReader::new(response.into_reader());
        let mut splitter = SentenceSplitter::default();
        let mut whole = String::new();
        for line in reader.lines() {
            let line = line.map_err(|e| {
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) {
                    LlmError::Timeout
                } else {
                    LlmError::Http(e.kind().to_string())
                }
            })?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let data = data.trim();
            if data == "[DONE]" {
                break;
            }
            let chunk: serde_json::Value = serde_json::from_str(data)
                .map_err(|e| LlmError::Protocol(format!("bad event: {e}")))?;
            let delta = chunk
                .pointer("/choices/0/delta/content")
                .and_then(|v| v.as_str())
                .unwrap_or("");
            whole.push_str(delta);
            for sentence in splitter.push(delta) {
                on_sentence(&sentence);
            }
        }
        if let Some(rest) = splitter.finish() {
            on_sentence(&rest);
        }
        if whole.trim().is_empty() {
            return Err(LlmError::Protocol("empty answer".into()));
        }
        Ok(whole.trim().to_string())
    }

    /// Asks which of `intents` (name, label) the words mean; `None` for none of them.
    pub fn extract_intent(
        &self,
        words: &str,
        intents: &[(String, String)],
    ) -> Result<Option<String>, LlmError> {
        let list: Vec<String> = intents.iter().map(|(n, l)| format!("{n}: {l}")).collect();
        let body = serde_json::json!({
            "model": self.config.model,
            "stream": false,
            "max_tokens": 20,
            "messages": [
                {"role": "system", "content": format!(
                    "Classify the caller's words into one of these intents and reply with the \
                     intent name only, or `none`:\n{}", list.join("\n"))},
                {"role": "user", "content": words},
            ],
        });
        let text = self
            .request(body)?
            .into_string()
            .map_err(|e| LlmError::Http(e.kind().to_string()))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| LlmError::Protocol(e.to_string()))?;
        let answer = json
            .pointer("/choices/0/message/content")
            .and_then(|v| v.as_str())
            .ok_or_else(|| LlmError::Protocol("no message content".into()))?
            .trim()
            .trim_matches(|c: char| c == '`' || c == '.' || c == '"')
            .to_string();
        Ok(intents
            .iter()
            .find(|(n, _)| *n == answer)
            .map(|(n, _)| n.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences_across_pieces() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("Your plan costs 3").is_empty());
        assert!(s.push(".5 dollars a day").is_empty());
        assert_eq!(
            s.push(". You can"),
            vec!["Your plan costs 3.5 dollars a day."]
        );
        assert_eq!(
            s.push(" pay online! 好的。还有"),
            vec!["You can pay online!", "好的。"]
        );
        assert_eq!(s.finish().as_deref(), Some("还有"));
    }
}
