//! Logging: tracing to stderr, as text (no timestamps under systemd, whose journal adds them)
//! or JSON; level from the configuration, overridden by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use vinod::config::LogConfig;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match config.format.as_str() {
        "json" => builder.json().try_init(),
        "journald" => builder.without_time().with_ansi(false).try_init(),
        "auto" if under_journal => builder.without_time().with_ansi(false).try_init(),
        _ => builder.try_init(),
    };
    // A second initialisation (tests) keeps the first subscriber.
    drop(result);
}
