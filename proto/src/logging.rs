//! How every binary of the toolkit sets up its logs, under one rule:
//! an explicit log flag beats `RUST_LOG`, which beats the binary's default
//! filter. Filters use tracing-subscriber's `EnvFilter` syntax
//! (`info`, `warn,sfu_stub=debug`, …); an invalid one is an error rather
//! than silently replaced, so a typo does not hide the logs asked for.

use tracing_subscriber::EnvFilter;

/// The environment variable consulted when no flag is given.
pub const ENV_VAR: &str = "RUST_LOG";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    /// For binaries whose standard output is a report.
    Stderr,
}

/// Errors of [`init`].
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid log filter {directives:?} (from {source_name}): {reason}")]
    InvalidFilter { directives: String, source_name: &'static str, reason: String },
    #[error("logging was already set up: {0}")]
    AlreadySet(String),
}

/// Where the filter in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    Flag,
    Env,
    Default,
}

impl FilterSource {
    fn name(self) -> &'static str {
        match self {
            FilterSource::Flag => "the log flag",
            FilterSource::Env => ENV_VAR,
            FilterSource::Default => "the default",
        }
    }
}

/// The rule itself: the flag if given, else `RUST_LOG` if set and not blank,
/// else the default.
pub fn choose<'a>(flag: Option<&'a str>, env: Option<&'a str>, default: &'a str) -> (&'a str, FilterSource) {
    match (flag, env) {
        (Some(flag), _) => (flag, FilterSource::Flag),
        (None, Some(env)) if !env.trim().is_empty() => (env, FilterSource::Env),
        _ => (default, FilterSource::Default),
    }
}

/// The filter the rule gives, with `RUST_LOG` read from the environment.
pub fn filter(flag: Option<&str>, default: &str) -> Result<EnvFilter, LogError> {
    let env = std::env::var(ENV_VAR).ok();
    let (directives, source) = choose(flag, env.as_deref(), default);
    EnvFilter::try_new(directives).map_err(|e| LogError::InvalidFilter {
        directives: directives.to_string(),
        source_name: source.name(),
        reason: e.to_string(),
    })
}

/// Install the global subscriber: [`filter`]'s filter, in `format`, to `output`.
pub fn init(flag: Option<&str>, default: &str, format: Format, output: Output) -> Result<(), LogError> {
    let filter = filter(flag, default)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match (format, output) {
        (Format::Text, Output::Stdout) => builder.try_init(),
        (Format::Text, Output::Stderr) => builder.with_writer(std::io::stderr).try_init(),
        (Format::Json, Output::Stdout) => builder.json().try_init(),
        (Format::Json, Output::Stderr) => builder.json().with_writer(std::io::stderr).try_init(),
    };
    installed.map_err(|e| LogError::AlreadySet(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_default() {
        assert_eq!(choose(Some("debug"), Some("trace"), "info"), ("debug", FilterSource::Flag));
        assert_eq!(choose(None, Some("trace"), "info"), ("trace", FilterSource::Env));
        assert_eq!(choose(None, None, "info"), ("info", FilterSource::Default));
        // A blank RUST_LOG is as good as unset.
        assert_eq!(choose(None, Some("  "), "info"), ("info", FilterSource::Default));
        // An explicit flag is taken even when blank: the user asked for it.
        assert_eq!(choose(Some(""), Some("trace"), "info"), ("", FilterSource::Flag));
    }

    #[test]
    fn an_invalid_filter_is_an_error_naming_its_source() {
        let e = filter(Some("info,[bad"), "info").unwrap_err();
        assert!(e.to_string().contains("the log flag"), "{e}");
    }
}
