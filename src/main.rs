//! The `vinod` binary: parse arguments, run, print the error chain on failure.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vinod: {e:#}");
            ExitCode::FAILURE
        }
    }
}
