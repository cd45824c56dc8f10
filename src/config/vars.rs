//! Reading variables: each value parsed and range-checked, each problem naming
//! its variable.

use std::collections::HashMap;

use super::ConfigError;

/// The variables a configuration is read from (the environment, or a map in tests).
pub struct Vars<'a>(pub &'a HashMap<String, String>);

impl Vars<'_> {
    /// A variable's value, trimmed; unset and empty are the same.
    pub fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// A true/false variable (`1`, `true`, `yes` / `0`, `false`, `no`).
    pub fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes") => Ok(true),
            Some("0" | "false" | "no") => Ok(false),
            Some(other) => Err(ConfigError::Invalid {
                var,
                value: other.into(),
                message: "expected true or false".into(),
            }),
        }
    }

    /// A value of a type that parses, or `default` when unset (`None`: required).
    pub fn parse_or<T: std::str::FromStr>(&self, var: &'static str, default: Option<T>) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(var) {
            Some(raw) => raw.parse().map_err(|e: T::Err| ConfigError::Invalid {
                var,
                value: raw.into(),
                message: e.to_string(),
            }),
            None => default.ok_or(ConfigError::Unsupported {
                var,
                message: "is required".into(),
            }),
        }
    }

    /// A number between `min` and `max`, or `default` when unset.
    pub fn range<T>(&self, var: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
        T::Err: std::fmt::Display,
    {
        let value = self.parse_or(var, Some(default))?;
        if value < min || value > max {
            return Err(ConfigError::Invalid {
                var,
                value: value.to_string(),
                message: format!("must be between {min} and {max}"),
            });
        }
        Ok(value)
    }

    /// One of a few named choices (case-insensitive), or the first when unset.
    pub fn choice<T: Copy>(&self, var: &'static str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let raw = self.get(var).map(str::to_ascii_lowercase);
        let Some(raw) = raw else {
            return Ok(choices[0].1);
        };
        choices
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, value)| *value)
            .ok_or_else(|| ConfigError::Invalid {
                var,
                value: raw.clone(),
                message: format!(
                    "expected one of {}",
                    choices.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
                ),
            })
    }

    /// An `http://` or `https://` URL, without a trailing slash.
    pub fn http_url(&self, var: &'static str, raw: &str, example: &str) -> Result<String, ConfigError> {
        if raw.starts_with("http://") || raw.starts_with("https://") {
            Ok(raw.trim_end_matches('/').to_string())
        } else {
            Err(ConfigError::Invalid {
                var,
                value: raw.into(),
                message: format!("expected an http:// or https:// URL{example}"),
            })
        }
    }
}
