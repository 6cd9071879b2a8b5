//! Conditions over call variables, as flows write them in `when` and transitions.
//!
//! Owns: [`Condition`] (parsing `a == b && c != 'd' && e && !f` and evaluating it) and its
//! [`Clause`]s.
//!
//! Invariants: a parsed condition names only variables of letters, digits, `_`, `.` and `-`; an
//! unset variable reads as the empty string, so evaluation never fails.

use std::collections::BTreeMap;

/// A condition over call variables: all clauses must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub clauses: Vec<Clause>,
}

/// One test of a variable.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    Equals(String, String),
    NotEquals(String, String),
    IsSet(String),
    IsUnset(String),
}

impl Condition {
    /// Parses `a == b && c != 'd' && e && !f`.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut clauses = Vec::new();
        for part in source.split("&&") {
            let part = part.trim();
            let unquote = |s: &str| s.trim().trim_matches(|c| c == '\'' || c == '"').to_string();
            let var_ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
            };
            let clause = if let Some((l, r)) = part.split_once("!=") {
                Clause::NotEquals(l.trim().to_string(), unquote(r))
            } else if let Some((l, r)) = part.split_once("==") {
                Clause::Equals(l.trim().to_string(), unquote(r))
            } else if let Some(v) = part.strip_prefix('!') {
                Clause::IsUnset(v.trim().to_string())
            } else {
                Clause::IsSet(part.to_string())
            };
            let var = match &clause {
                Clause::Equals(v, _)
                | Clause::NotEquals(v, _)
                | Clause::IsSet(v)
                | Clause::IsUnset(v) => v,
            };
            if !var_ok(var) {
                return Err(format!(
                    "bad condition {source:?}: expected `variable == value`, `variable != value`, \
                     `variable` or `!variable`, joined by `&&`"
                ));
            }
            clauses.push(clause);
        }
        Ok(Self { clauses })
    }

    /// Evaluates against call variables (an unset variable is the empty string).
    pub fn holds(&self, vars: &BTreeMap<String, String>) -> bool {
        let get = |v: &str| vars.get(v).map(String::as_str).unwrap_or("");
        self.clauses.iter().all(|c| match c {
            Clause::Equals(v, x) => get(v) == x,
            Clause::NotEquals(v, x) => get(v) != x,
            Clause::IsSet(v) => !get(v).is_empty(),
            Clause::IsUnset(v) => get(v).is_empty(),
        })
    }
}
