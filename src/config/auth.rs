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

/// Bearer JWTs from the company's identity provider (`AUTH_JWT_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// Where the provider publishes its signing keys.
    pub jwks_url: String,
    /// `iss` a token must carry.
    pub issuer: String,
    /// `aud` a token must carry (this server).
    pub audience: String,
    /// The claim listing the user's groups (`group:<g>` principals).
    pub groups_claim: String,
    /// The claim naming the user's tenant; `None`: every user is in `default`.
    pub tenant_claim: Option<String>,
    /// The claim naming the user's role (`reader`, `writer`, `admin`); `None`
    /// or absent: `reader`.
    pub role_claim: Option<String>,
    /// How long fetched keys are trusted before they are fetched again.
    pub jwks_refresh: std::time::Duration,
    /// A token with an unknown `kid` fetches the keys again, at most this often.
    pub jwks_min_refetch: std::time::Duration,
}

impl JwtSettings {
    fn parse(vars: &Vars) -> Result<Option<Self>, ConfigError> {
        const NEEDED: [&str; 3] = ["AUTH_JWT_JWKS_URL", "AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE"];
        let given: Vec<Option<&str>> = NEEDED.iter().map(|var| vars.get(var)).collect();
        let [Some(url), Some(issuer), Some(audience)] = given[..] else {
            if let Some(missing) = given.iter().zip(NEEDED).find(|(v, _)| v.is_none()).map(|(_, var)| var)
                && given.iter().any(Option::is_some)
            {
                return Err(ConfigError::Unsupported {
                    var: missing,
                    message: "JWT sign-in needs AUTH_JWT_JWKS_URL, AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE together"
                        .into(),
                });
            }
            return Ok(None);
        };
        let claim = |var: &'static str| {
            vars.get(var)
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
        };
        Ok(Some(Self {
            jwks_url: vars.http_url("AUTH_JWT_JWKS_URL", url, " (the provider's JWKS document)")?,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            groups_claim: claim("AUTH_JWT_GROUPS_CLAIM").unwrap_or_else(|| "groups".into()),
            tenant_claim: claim("AUTH_JWT_TENANT_CLAIM"),
            role_claim: claim("AUTH_JWT_ROLE_CLAIM"),
            jwks_refresh: std::time::Duration::from_secs(vars.range(
                "AUTH_JWT_JWKS_REFRESH_SECS",
                600u64,
                10,
                86_400,
            )?),
            jwks_min_refetch: std::time::Duration::from_secs(vars.range(
                "AUTH_JWT_JWKS_MIN_REFETCH_SECS",
                30u64,
                1,
                3600,
            )?),
        }))
    }
}

/// `CORS_ALLOWED_ORIGINS`: the browser origins that may call the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    None,
    /// `*`
    Any,
    /// `https://kb.corp.example, http://localhost:5173`
    List(Vec<String>),
}

impl CorsOrigins {
    fn parse(vars: &Vars) -> Result<Self, ConfigError> {
        let Some(raw) = vars.get("CORS_ALLOWED_ORIGINS") else {
            return Ok(Self::None);
        };
        let origins: Vec<&str> = raw.split(',').map(str::trim).filter(|o| !o.is_empty()).collect();
        if origins == ["*"] {
            return Ok(Self::Any);
        }
        let invalid = |origin: &str, why: &str| ConfigError::Invalid {
            var: "CORS_ALLOWED_ORIGINS",
            value: origin.chars().take(120).collect(),
            message: format!("{why}; give origins as scheme://host[:port], comma-separated, or *"),
        };
        let mut list = Vec::with_capacity(origins.len());
        for origin in origins {
            let Some((scheme, host)) = origin.split_once("://") else {
                return Err(invalid(origin, "no scheme"));
            };
            if !matches!(scheme, "http" | "https") {
                return Err(invalid(origin, "the scheme must be http or https"));
            }
            if host.is_empty() || host.contains(['/', '?', '#', ' ', '*']) {
                return Err(invalid(origin, "an origin has no path, query or wildcard"));
            }
            list.push(origin.to_string());
        }
        Ok(match list.is_empty() {
            true => Self::None,
            false => Self::List(list),
        })
    }
}

/// The names a request's `Host` may carry. A page of another site that points
/// its own name at 127.0.0.1 (DNS rebinding) sends that name, and is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// `*`: any name (the default on a non-loopback address, whose public
    /// names the server cannot know).
    Any,
    /// Lower-case host names or IP literals (IPv6 in brackets), without ports.
    List(Vec<String>),
}

impl AllowedHosts {
    /// The names of a loopback address: what a browser on this machine sends.
    const LOOPBACK: [&'static str; 3] = ["localhost", "127.0.0.1", "[::1]"];

    fn parse(vars: &Vars, loopback: bool) -> Result<Self, ConfigError> {
        let Some(raw) = vars.get("ALLOWED_HOSTS") else {
            return Ok(match loopback {
                true => Self::List(Self::LOOPBACK.map(String::from).to_vec()),
                false => Self::Any,
            });
        };
        let names: Vec<String> = raw
            .split(',')
            .map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if names.iter().any(|n| n == "*") {
            return Ok(Self::Any);
        }
        if let Some(bad) = names
            .iter()
            .find(|n| n.contains(['/', ' ', '@', '*']) || (n.contains(':') && !n.starts_with('[')))
        {
            return Err(ConfigError::Invalid {
                var: "ALLOWED_HOSTS",
                value: bad.chars().take(120).collect(),
                message: "give host names without scheme or port (IPv6 in brackets), comma-separated, or *".into(),
            });
        }
        if names.is_empty() {
            return Err(ConfigError::Invalid {
                var: "ALLOWED_HOSTS",
                value: raw.chars().take(120).collect(),
                message: "names no host; use * to allow any".into(),
            });
        }
        Ok(Self::List(names))
    }

    /// Whether `host` (a `Host` header's name, port already removed) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::List(names) => {
                let host = host.trim_end_matches('.');
                names.iter().any(|n| n.eq_ignore_ascii_case(host))
            }
        }
    }
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
    /// Sign-in with the identity provider's JWTs, when configured.
    pub jwt: Option<JwtSettings>,
    /// `AUDIT_QUERY_TEXT`: the text of searches and questions goes into the audit log.
    pub audit_query_text: bool,
    pub cors_origins: CorsOrigins,
    /// `ALLOWED_HOSTS`: the `Host` names requests may carry.
    pub allowed_hosts: AllowedHosts,
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
            jwt: JwtSettings::parse(vars)?,
            audit_query_text: vars.flag("AUDIT_QUERY_TEXT", false)?,
            cors_origins: CorsOrigins::parse(vars)?,
            allowed_hosts: AllowedHosts::parse(vars, loopback)?,
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
