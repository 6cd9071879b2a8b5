//! Webhooks to business systems (CRM, orders, tickets): a templated HTTP request with a
//! timeout, whose JSON answer fills call variables.
//!
//! The dialogue runs in a worker thread, so requests are blocking (`ureq`) and bounded by the
//! webhook's `timeout_ms` (connect, read and write together). The outcome is one of four stable
//! codes the flow can branch on through `${name.result}`: `ok`, `not_found` (HTTP 404: the system
//! answered that there is no such record), `timeout` or `error`. Only the last two are failures
//! that the webhook's `fallback` apologises for.
//!
//! Invariant: rendered URLs, headers and bodies may carry secrets from the environment, so they
//! are never logged or put in errors; logs name the webhook and its URL template only.

use std::collections::BTreeMap;
use std::time::Duration;

use super::flow::Webhook;
use super::template::{json_escape, url_escape};

/// How a webhook call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    /// 2xx: the variables taken from the JSON answer (by the webhook's `save` paths).
    Ok(BTreeMap<String, String>),
    /// 404: the system answered, and has no such record (an unknown account or order).
    NotFound,
    /// No answer within the timeout.
    Timeout,
    /// Refused, unreachable, non-2xx, or an answer that is not JSON.
    Failed(String),
}

impl WebhookOutcome {
    /// The stable result code flows branch on.
    pub fn code(&self) -> &'static str {
        match self {
            WebhookOutcome::Ok(_) => "ok",
            WebhookOutcome::NotFound => "not_found",
            WebhookOutcome::Timeout => "timeout",
            WebhookOutcome::Failed(_) => "error",
        }
    }
}

/// Reads a dotted path (`order.status`, `items.0.name`) from a JSON value as text.
pub fn json_path(value: &serde_json::Value, path: &str) -> Option<String> {
    let mut v = value;
    for key in path.split('.').filter(|k| !k.is_empty()) {
        v = match v {
            serde_json::Value::Object(map) => map.get(key)?,
            serde_json::Value::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn is_timeout(err: &ureq::Error) -> bool {
    let ureq::Error::Transport(t) = err else {
        return false;
    };
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        source = e.source();
    }
    t.to_string().contains("timed out")
}

/// Calls a webhook with the call's variables.
pub fn call(webhook: &Webhook, vars: &BTreeMap<String, String>) -> WebhookOutcome {
    let url = webhook.url.render_with(vars, url_escape);
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_millis(webhook.timeout_ms))
        .build();
    let mut request = agent.request(&webhook.method, &url);
    let mut has_content_type = false;
    for (name, value) in &webhook.headers {
        has_content_type |= name.eq_ignore_ascii_case("content-type");
        request = request.set(name, &value.render(vars));
    }
    let result = match &webhook.body {
        Some(body) => {
            if !has_content_type {
                request = request.set("Content-Type", "application/json");
            }
            request.send_string(&body.render_with(vars, json_escape))
        }
        None => request.call(),
    };
    let outcome = match result {
        Ok(response) => match response.into_string() {
            Ok(text) => match serde_json::from_str::<serde_json::Value>(&text) {
                Ok(json) => WebhookOutcome::Ok(
                    webhook
                        .save
                        .iter()
                        .filter_map(|(var, path)| json_path(&json, path).map(|v| (var.clone(), v)))
                        .collect(),
                ),
                Err(e) => WebhookOutcome::Failed(format!("answer is not JSON: {e}")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => WebhookOutcome::Timeout,
            Err(e) => WebhookOutcome::Failed(format!("reading the answer: {}", e.kind())),
        },
        Err(ureq::Error::Status(404, _)) => WebhookOutcome::NotFound,
        Err(ureq::Error::Status(code, _)) => WebhookOutcome::Failed(format!("HTTP {code}")),
        Err(e) if is_timeout(&e) => WebhookOutcome::Timeout,
        Err(e) => WebhookOutcome::Failed(format!("{:?}", e.kind())),
    };
    match &outcome {
        WebhookOutcome::Ok(_) | WebhookOutcome::NotFound => {
            tracing::debug!(webhook = %webhook.name, url = %webhook.url.source(), result = outcome.code(), "webhook answered")
        }
        other => tracing::warn!(
            webhook = %webhook.name,
            url = %webhook.url.source(),
            result = other.code(),
            detail = ?other,
            "webhook did not answer"
        ),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"order":{"status":"shipped","items":[{"n":2}]},"ok":true}"#)
                .expect("json");
        assert_eq!(json_path(&v, "order.status").as_deref(), Some("shipped"));
        assert_eq!(json_path(&v, "order.items.0.n").as_deref(), Some("2"));
        assert_eq!(json_path(&v, "ok").as_deref(), Some("true"));
        assert_eq!(json_path(&v, "missing"), None);
    }
}
