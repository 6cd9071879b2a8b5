//! Who may read the store: users with a role (dashboard logins, argon2id password hashes) and
//! API bearer tokens (kept only as SHA-256 hashes; the secret is shown once, when created).
//!
//! `hotline users add NAME --role ROLE` and `hotline tokens create NAME` write here.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use ring::rand::SecureRandom;
use serde::Serialize;

use super::{Store, StoreError};

/// What a user may do. Stable codes ([`Role::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Takes calls at `/agent`.
    Agent,
    /// Everything an agent may, and the dashboard: calls, analytics, the knowledge gaps.
    Supervisor,
    /// Everything, and the administration pages.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Supervisor, Role::Agent];

    pub fn code(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    /// The role a code names, or an error that lists the valid ones.
    pub fn parse(code: &str) -> Result<Self, StoreError> {
        Role::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .ok_or_else(|| {
                StoreError::Access(format!(
                    "unknown role `{code}`; valid roles: admin, supervisor, agent"
                ))
            })
    }
}

/// A user, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

/// An API token, as listed (never its secret).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    /// The token every form of this session must carry.
    pub csrf: String,
}

/// How long a sign-in lasts.
pub const SESSION_TTL_MS: i64 = 12 * 60 * 60 * 1000;

/// The shortest password `users add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 10;

fn valid_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Access(format!(
            "`{name}` is not a valid name: 1 to 64 letters, digits, '.', '_', '-' or '@'"
        )))
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], StoreError> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Access("the system's random source failed".into()))?;
    Ok(b)
}

fn sha256_hex(s: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    /// Adds a user, or sets the role and password of one that exists.
    pub async fn put_user(&self, name: &str, role: Role, password: &str) -> Result<(), StoreError> {
        valid_name(name)?;
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(StoreError::Access(format!(
                "the password must have at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| StoreError::Access(format!("cannot hash the password: {e}")))?
            .to_string();
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, password_hash = excluded.password_hash",
        )
        .bind(name)
        .bind(role.code())
        .bind(hash)
        .bind(crate::call::unix_ms_now() as i64)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The user's role when `password` is theirs; `None` for an unknown user or a wrong
    /// password (the same answer, so a login does not tell which).
    pub async fn verify_user(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Option<Role>, StoreError> {
        let found: Option<(String, String)> =
            sqlx::query_as("SELECT role, password_hash FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
        let Some((role, hash)) = found else {
            // Spend the same time as a real check, so timing does not tell which names exist.
            let _ = Argon2::default()
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng));
            return Ok(None);
        };
        let parsed = PasswordHash::new(&hash)
            .map_err(|e| StoreError::Access(format!("user {name}: stored hash unreadable: {e}")))?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_err()
        {
            return Ok(None);
        }
        Ok(Some(Role::parse(&role)?))
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, role, created_at FROM users ORDER BY name")
                .fetch_all(self.pool())
                .await?;
        rows.into_iter()
            .map(|(name, role, created_at)| {
                Ok(User {
                    name,
                    role: Role::parse(&role)?,
                    created_at,
                })
            })
            .collect()
    }

    /// Removes a user (and signs them out); `false` when there was none of that name.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM sessions WHERE user_name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        let done = sqlx::query("DELETE FROM users WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Signs a user in: a new session, whose cookie secret is returned (only its hash is
    /// kept). Expired sessions are cleared on the way.
    pub async fn create_session(
        &self,
        user: &str,
        role: Role,
    ) -> Result<(String, Session), StoreError> {
        let now = crate::call::unix_ms_now() as i64;
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let secret = url.encode(random_bytes::<32>()?);
        let csrf = url.encode(random_bytes::<24>()?);
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_name, role, csrf, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(sha256_hex(&secret))
        .bind(user)
        .bind(role.code())
        .bind(&csrf)
        .bind(now)
        .bind(now + SESSION_TTL_MS)
        .execute(self.pool())
        .await?;
        Ok((
            secret,
            Session {
                user: user.to_string(),
                role,
                csrf,
            },
        ))
    }

    /// The live session a cookie secret names, if any. A user removed since, or whose role
    /// changed, has the session's role no more: the user's current role counts.
    pub async fn session(&self, secret: &str) -> Result<Option<Session>, StoreError> {
        let now = crate::call::unix_ms_now() as i64;
        let found: Option<(String, String, String)> = sqlx::query_as(
            "SELECT s.user_name, u.role, s.csrf FROM sessions s JOIN users u ON u.name = s.user_name \
             WHERE s.id_hash = $1 AND s.expires_at > $2",
        )
        .bind(sha256_hex(secret))
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        found
            .map(|(user, role, csrf)| {
                Ok(Session {
                    user,
                    role: Role::parse(&role)?,
                    csrf,
                })
            })
            .transpose()
    }

    /// Signs a session out.
    pub async fn end_session(&self, secret: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(sha256_hex(secret))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Creates an API token named `name` and returns its secret, which is not kept: only its
    /// hash is.
    pub async fn create_token(&self, name: &str) -> Result<(TokenInfo, String), StoreError> {
        valid_name(name)?;
        let id: String = random_bytes::<6>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let secret = format!(
            "hl_{id}_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)
        );
        let now = crate::call::unix_ms_now() as i64;
        sqlx::query(
            "INSERT INTO api_tokens (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&id)
        .bind(name)
        .bind(sha256_hex(&secret))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok((
            TokenInfo {
                id,
                name: name.to_string(),
                created_at: now,
                last_used_at: None,
            },
            secret,
        ))
    }

    /// The token a bearer secret belongs to (and notes its use), or `None`.
    pub async fn check_token(&self, secret: &str) -> Result<Option<TokenInfo>, StoreError> {
        if !secret.starts_with("hl_") {
            return Ok(None);
        }
        let found: Option<(String, String, i64)> =
            sqlx::query_as("SELECT id, name, created_at FROM api_tokens WHERE secret_hash = $1")
                .bind(sha256_hex(secret))
                .fetch_optional(self.pool())
                .await?;
        let Some((id, name, created_at)) = found else {
            return Ok(None);
        };
        let now = crate::call::unix_ms_now() as i64;
        sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(self.pool())
            .await?;
        Ok(Some(TokenInfo {
            id,
            name,
            created_at,
            last_used_at: Some(now),
        }))
    }

    /// Every token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, StoreError> {
        let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, name, created_at, last_used_at FROM api_tokens ORDER BY created_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name, created_at, last_used_at)| TokenInfo {
                id,
                name,
                created_at,
                last_used_at,
            })
            .collect())
    }

    /// Revokes a token by its id; `false` when there was none.
    pub async fn revoke_token(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_an_unknown_one_lists_the_valid() {
        assert_eq!(Role::parse("supervisor").unwrap(), Role::Supervisor);
        let e = Role::parse("boss").unwrap_err().to_string();
        assert!(e.contains("admin, supervisor, agent"), "{e}");
        assert!(Role::Admin > Role::Supervisor && Role::Supervisor > Role::Agent);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("anna.lee@example").is_ok());
        assert!(valid_name("").is_err());
        assert!(valid_name("a b").is_err());
    }
}
