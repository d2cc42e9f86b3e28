//! From a raw value to a setting: [`Raw`] parses a value as it came from
//! TOML or the environment, [`Sources`] remembers where each setting came
//! from and checks the ranges, naming a bad setting by its source, and
//! [`key_at`] names the key of a TOML syntax error.

use compute_pool::{ConfigError, MAX_THREADS};

use super::size::parse_size;
use super::table::{Setting, SETTINGS};
use super::RuntimeConfig;

/// A value as it came from its source, before it is parsed.
pub(super) enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    /// The value as the user wrote it, for error messages.
    pub(super) fn shown(&self) -> String {
        match self {
            Raw::Toml(value) => value.to_string(),
            Raw::Env(text) => text.escape_debug().to_string(),
        }
    }

    /// A whole number that fits `T` (a count, or a duration in the field's
    /// unit), or the reason it is not one.
    fn integer<T: TryFrom<i128>>(&self, what: &str) -> Result<T, String> {
        let n = match self {
            Raw::Toml(toml::Value::Integer(n)) => i128::from(*n),
            Raw::Toml(other) => {
                return Err(format!(
                    "expected {what} (a whole number), found {}",
                    other.type_str()
                ))
            }
            Raw::Env(text) => text
                .trim()
                .parse::<i128>()
                .map_err(|_| format!("expected {what} (a whole number)"))?,
        };
        T::try_from(n).map_err(|_| {
            if n < 0 {
                format!("{what} must not be negative")
            } else {
                "too large".to_owned()
            }
        })
    }

    /// A number of threads.
    pub(super) fn thread_count(&self) -> Result<usize, String> {
        self.integer("a thread count")
    }

    /// A number of jobs.
    pub(super) fn job_count(&self) -> Result<usize, String> {
        self.integer("a number of jobs")
    }

    /// `true` or `false` (the environment also takes `1` and `0`).
    pub(super) fn boolean(&self) -> Result<bool, String> {
        match self {
            Raw::Toml(toml::Value::Boolean(on)) => Ok(*on),
            Raw::Toml(other) => Err(format!(
                "expected true or false, found {}",
                other.type_str()
            )),
            Raw::Env(text) => match text.trim() {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err("expected true or false".to_owned()),
            },
        }
    }

    /// A number of turns (one in how many).
    pub(super) fn turns(&self) -> Result<u32, String> {
        self.integer("a number of starts")
    }

    /// A duration, as a whole number of milliseconds.
    pub(super) fn millis(&self) -> Result<u64, String> {
        self.integer("a number of milliseconds")
    }

    /// A duration, as a whole number of microseconds.
    pub(super) fn micros(&self) -> Result<u64, String> {
        self.integer("a number of microseconds")
    }

    /// A byte size: a whole number of bytes or a size string (see the
    /// `settings` module docs).
    pub(super) fn size(&self) -> Result<usize, String> {
        match self {
            Raw::Toml(toml::Value::Integer(n)) if *n < 0 => {
                Err("a size must not be negative".to_owned())
            }
            Raw::Toml(toml::Value::Integer(n)) => {
                usize::try_from(*n).map_err(|_| "too large for this machine".to_owned())
            }
            Raw::Toml(toml::Value::String(text)) => parse_size(text),
            Raw::Env(text) => parse_size(text),
            Raw::Toml(other) => Err(format!(
                "expected a size in bytes or a string such as \"4MB\", found {}",
                other.type_str()
            )),
        }
    }

    /// A string, as written.
    pub(super) fn string(&self) -> Result<String, String> {
        match self {
            Raw::Toml(toml::Value::String(text)) => Ok(text.clone()),
            Raw::Env(text) => Ok((*text).to_owned()),
            Raw::Toml(other) => Err(format!("expected a string, found {}", other.type_str())),
        }
    }
}

/// Where the settings parsed so far came from: the name (`runtime.<key>` or
/// the environment variable) and the value as written, per row of
/// [`SETTINGS`]. Errors about those settings name them so.
#[derive(Default)]
pub(super) struct Sources {
    written: [Option<(String, String)>; SETTINGS.len()],
}

impl Sources {
    /// Parses `raw` into the field of row `index` of `config`; `name` is the source
    /// (`runtime.<key>` or the variable), remembered for later errors.
    pub(super) fn parse(
        &mut self,
        config: &mut RuntimeConfig,
        index: usize,
        name: String,
        raw: &Raw<'_>,
    ) -> Result<(), ConfigError> {
        let shown = raw.shown();
        (SETTINGS[index].parse)(config, raw)
            .map_err(|reason| ConfigError::invalid(&name, &shown, reason))?;
        self.written[index] = Some((name, shown));
        Ok(())
    }

    /// The name and written value of the setting at `index` in `config`:
    /// as parsed, or as the struct holds it.
    fn describe(&self, config: &RuntimeConfig, index: usize) -> (String, String) {
        let setting = &SETTINGS[index];
        self.written[index].clone().unwrap_or_else(|| {
            let shown = (setting.shown)(config).unwrap_or_default();
            (setting.field(), shown)
        })
    }

    /// Checks the ranges of `config`: the Tokio worker count here, every pool
    /// setting by [`ComputeConfig::validate`](compute_pool::ComputeConfig::validate).
    /// Errors name the setting by its source and show the value as written.
    pub(super) fn validate(&self, config: &RuntimeConfig) -> Result<(), ConfigError> {
        if let Some(workers) = config.num_worker_threads {
            let reason = if workers == 0 {
                Some("must be at least 1".to_owned())
            } else if workers > MAX_THREADS {
                Some(format!("more than the {MAX_THREADS} threads allowed"))
            } else {
                None
            };
            if let (Some(reason), Some(index)) = (reason, Setting::index_of("num_worker_threads")) {
                let (name, shown) = self.describe(config, index);
                return Err(ConfigError::invalid(name, shown, reason));
            }
        }
        config
            .pool_settings()
            .validate()
            .map_err(|error| match error {
                ConfigError::Invalid {
                    field,
                    value,
                    reason,
                } => {
                    match SETTINGS
                        .iter()
                        .position(|setting| setting.pool_field == Some(field.as_str()))
                    {
                        Some(index) => {
                            let (name, shown) = self.describe(config, index);
                            ConfigError::invalid(name, shown, reason)
                        }
                        None => ConfigError::Invalid {
                            field,
                            value,
                            reason,
                        },
                    }
                }
                other => other,
            })
    }
}

/// The `table.key` on the line holding byte `offset` of `text`, if that line
/// is a `key = value` line: names the field in a TOML syntax error.
pub(super) fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|header| {
            header
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_owned()
        });
    Some(match table {
        Some(table) if !table.is_empty() => format!("{table}.{key}"),
        _ => key.to_owned(),
    })
}
