//! Text templates with `${variable}` interpolation, for prompts and webhook requests.
//!
//! A template is parsed once when its flow loads ([`Template::parse`] reports a malformed
//! placeholder), and rendered per turn against the call's variables. `${name:-fallback}` gives
//! a default for an unset variable. Names in the `env.` namespace read the process environment
//! and are only allowed where [`Scope::Request`] is used (webhook URLs, headers and bodies), so
//! a secret can never be spoken to a caller; rendered requests are never logged.

use std::collections::BTreeMap;

/// Where a template is used, which decides what it may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Spoken to the caller: call variables only.
    Prompt,
    /// Sent to a business system: call variables and `env.*`.
    Request,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    Var {
        name: String,
        default: Option<String>,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

impl Template {
    /// Parses `${...}` placeholders. The error says what is wrong, for the flow loader to place.
    pub fn parse(source: &str, scope: Scope) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {source:?} (expected `}}`)"))?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n.trim(), Some(d.to_string())),
                None => (inner.trim(), None),
            };
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if !valid {
                return Err(format!(
                    "bad variable name {name:?} in {source:?} (expected letters, digits, `_`, `.`)"
                ));
            }
            if name.starts_with("env.") && scope == Scope::Prompt {
                return Err(format!(
                    "`${{{name}}}`: environment variables may only be used in webhook requests, \
                     never in prompts"
                ));
            }
            parts.push(Part::Var {
                name: name.to_string(),
                default,
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self {
            parts,
            source: source.to_string(),
        })
    }

    /// The template as written (safe to log: secrets are not yet filled in).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the template reads.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { name, .. } => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills in the placeholders. An unset variable with no default renders as empty text.
    /// `escape` is applied to every substituted call variable (for JSON bodies and URLs), not to
    /// `env.*` values or defaults, which are part of the configuration.
    pub fn render_with(
        &self,
        vars: &BTreeMap<String, String>,
        escape: impl Fn(&str) -> String,
    ) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Var { name, default } => {
                    // Environment values are configuration (base URLs, tokens), written by the
                    // operator for this place, so they are not escaped; call values are.
                    let (value, escaped) = match name.strip_prefix("env.") {
                        Some(env_name) => (
                            std::env::var(env_name).ok().filter(|v| !v.is_empty()),
                            false,
                        ),
                        None => (vars.get(name).filter(|v| !v.is_empty()).cloned(), true),
                    };
                    match (value, default) {
                        (Some(v), _) if escaped => out.push_str(&escape(&v)),
                        (Some(v), _) => out.push_str(&v),
                        // Defaults are part of the template, so they are not escaped.
                        (None, Some(d)) => out.push_str(d),
                        (None, None) => {}
                    }
                }
            }
        }
        out
    }

    /// Fills in the placeholders with values as they are.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> String {
        self.render_with(vars, str::to_string)
    }
}

/// Escapes a value for the inside of a JSON string literal.
pub fn json_escape(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Percent-encodes a value for a URL path segment or query value.
pub fn url_escape(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables_and_defaults() {
        let t = Template::parse("Order ${order_id} is ${status:-unknown}.", Scope::Prompt)
            .expect("valid");
        let mut vars = BTreeMap::new();
        vars.insert("order_id".to_string(), "42".to_string());
        assert_eq!(t.render(&vars), "Order 42 is unknown.");
    }

    #[test]
    fn rejects_env_in_prompts_and_bad_syntax() {
        assert!(Template::parse("key ${env.SECRET}", Scope::Prompt).is_err());
        assert!(Template::parse("key ${env.SECRET}", Scope::Request).is_ok());
        assert!(Template::parse("oops ${name", Scope::Prompt).is_err());
        assert!(Template::parse("oops ${na me}", Scope::Prompt).is_err());
    }
}
