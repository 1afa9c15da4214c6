//! `rethink` command-line entry point.

use clap::Parser;

fn main() {
    let cli = rethink::cli::Cli::parse();
    if let Err(err) = rethink::commands::run(cli.command) {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}
