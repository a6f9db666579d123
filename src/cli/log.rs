//! Logging: native journald records (with structured fields such as `vino`, `bridge`, `op`)
//! under systemd, human-readable text on a terminal, or JSON; level from the configuration,
//! overridden by `RUST_LOG`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

use vinod::config::LogConfig;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let wants_journal = config.format == "journald" || (config.format == "auto" && under_journal);
    if wants_journal {
        match tracing_journald::layer() {
            Ok(journal) => {
                let _ = Registry::default()
                    .with(filter)
                    .with(journal.with_syslog_identifier("vinod".into()))
                    .try_init();
                return;
            }
            Err(e) => eprintln!("vinod: journald is not reachable ({e}); logging to stderr"),
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.level)),
        )
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match config.format.as_str() {
        "json" => builder.json().try_init(),
        _ if wants_journal => builder.without_time().with_ansi(false).try_init(),
        _ => builder.try_init(),
    };
}
