//! The `vinod` binary: parse arguments, run, print the error chain on failure.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vinod: {e:#}");
            // A bad configuration will not fix itself: EX_CONFIG tells systemd not to restart.
            if e.chain().any(|c| c.is::<vinod::config::ConfigError>()) {
                ExitCode::from(78)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
