//! The `antidote` binary: parses the command line and runs the chosen role or tool.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = antidote_platform::cli::Cli::parse();
    match antidote_platform::cli::run(cli) {
        Ok(code) => code,
        // A reader that went away (`antidote schema | head`) is not an error of ours.
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping causes whose text the message already
/// contains (some libraries repeat their source in their own message).
fn one_line(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}
