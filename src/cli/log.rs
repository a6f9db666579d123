//! Logging: native journald records (with structured fields such as `vino`, `bridge`, `op`)
//! under systemd, human-readable text otherwise (coloured only on a terminal), or JSON; level
//! from the configuration, overridden by `RUST_LOG`.

use std::io::IsTerminal;

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
        "json" => builder.json().with_ansi(false).try_init(),
        _ if wants_journal => builder.without_time().with_ansi(false).try_init(),
        _ => builder.with_ansi(colour_wanted()).try_init(),
    };
}

/// Escape sequences belong on a terminal only: a log redirected to a file or pipe (or read by
/// a program) stays plain text. `NO_COLOR` turns colour off on a terminal too.
fn colour_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
