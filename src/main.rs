//! `rethink` command-line entry point.

use clap::Parser;
use clap::error::ErrorKind;

fn main() {
    let cli = match rethink::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => err.exit(),
        Err(err) => {
            eprintln!("{}", one_line(&err.render().to_string()));
            std::process::exit(2);
        }
    };
    if let Err(err) = rethink::commands::run(cli.command) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

/// clap's message on one line: the error and its details, without the usage boilerplate.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}
