//! The `antidote` binary: parses the command line and runs the chosen role or tool.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = antidote_platform::cli::Cli::parse();
    match antidote_platform::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
