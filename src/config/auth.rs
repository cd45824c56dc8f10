//! Access control: whether requests need a key, and the operator's key.

use std::net::SocketAddr;

use std::num::NonZeroU32;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::vars::Vars;

/// Shorter operator keys are refused: the key guards every tenant.
const MIN_ADMIN_KEY_CHARS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Off on a loopback address, required on any other.
    Auto,
    Required,
    Off,
}

/// Requests per second per key, and how many may come at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// Whether requests need a key, `mode` resolved against the address served on.
    pub required: bool,
    /// `DOCQA_ADMIN_KEY`: the operator's key, over every tenant.
    pub admin_key: Option<SecretString>,
    /// `/metrics` without a key.
    pub metrics_public: bool,
    /// Per key; `None`: unlimited.
    pub rate_limit: Option<RateLimit>,
    /// How long audit entries are kept (`AUDIT_RETENTION_DAYS`); `None`: for ever.
    pub audit_retention: Option<std::time::Duration>,
}

impl AuthSettings {
    pub fn parse(vars: &Vars, addr: SocketAddr) -> Result<Self, ConfigError> {
        let mode = vars.choice(
            "DOCQA_AUTH",
            &[
                ("auto", AuthMode::Auto),
                ("required", AuthMode::Required),
                ("off", AuthMode::Off),
            ],
        )?;
        let loopback = addr.ip().is_loopback();
        if mode == AuthMode::Off && !loopback {
            return Err(ConfigError::Unsupported {
                var: "DOCQA_AUTH",
                message: format!(
                    "off is only allowed on a loopback address, and DOCQA_ADDR is {addr}: anyone who can reach it \
                     could read and delete everything; set DOCQA_AUTH=required (or auto) and DOCQA_ADMIN_KEY"
                ),
            });
        }
        let admin_key: Option<SecretString> = vars.get("DOCQA_ADMIN_KEY").map(|key| key.to_string().into());
        if let Some(key) = &admin_key
            && key.expose_secret().chars().count() < MIN_ADMIN_KEY_CHARS
        {
            return Err(ConfigError::Unsupported {
                var: "DOCQA_ADMIN_KEY",
                message: format!("must be at least {MIN_ADMIN_KEY_CHARS} characters (e.g. openssl rand -hex 32)"),
            });
        }
        Ok(Self {
            mode,
            required: match mode {
                AuthMode::Auto => !loopback,
                AuthMode::Required => true,
                AuthMode::Off => false,
            },
            admin_key,
            metrics_public: vars.flag("METRICS_PUBLIC", false)?,
            rate_limit: rate_limit(vars)?,
            audit_retention: match vars.range("AUDIT_RETENTION_DAYS", 90u64, 0, 36_500)? {
                0 => None,
                days => Some(std::time::Duration::from_secs(days * 86_400)),
            },
        })
    }
}

/// `RATE_LIMIT_RPS` (0 or unset: unlimited) and `RATE_LIMIT_BURST` (default:
/// the rate, at least 1).
fn rate_limit(vars: &Vars) -> Result<Option<RateLimit>, ConfigError> {
    let per_second: u32 = vars.range("RATE_LIMIT_RPS", 0, 0, 1_000_000)?;
    let Some(per_second) = NonZeroU32::new(per_second) else {
        return Ok(None);
    };
    let burst: u32 = vars.range("RATE_LIMIT_BURST", per_second.get(), 1, 1_000_000)?;
    Ok(Some(RateLimit {
        per_second,
        burst: NonZeroU32::new(burst).unwrap_or(per_second),
    }))
}
