//! What each subcommand does, given its parsed flags.

use crate::atomic::write_atomic;
use crate::cli::{Command, LabelsArgs};
use crate::data::prepared::labels_csv;
use crate::train::trainer::{prepare_data, train};
use anyhow::Result;

/// Runs a parsed command line.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Train(args) => {
            let (config, options) = args.into_config();
            train(&config, &options)?;
            Ok(())
        }
        Command::Labels(args) => labels(args),
        Command::Kernel(args) => crate::kernel::run(&args.into_config()?).map(|_| ()),
        Command::Sweep(args) => crate::sweep::run(&args),
        Command::Report(args) => crate::report::run(&args),
        Command::Devices => {
            devices();
            Ok(())
        }
    }
}

/// `rethink labels`: the effective labels of every example as CSV.
fn labels(args: LabelsArgs) -> Result<()> {
    let (config, options, out) = args.into_config();
    config.validate()?;
    let data = prepare_data(&config, &options)?;
    write_atomic(&out, labels_csv(&data).as_bytes())?;
    eprintln!("wrote {} ({} train, {} val labels)", out.display(), data.train.len(), data.val.len());
    Ok(())
}

/// `rethink devices`: one line per device, then the GPU features this build lacks.
fn devices() {
    let (devices, missing) = crate::device::list();
    let width = devices.iter().map(|d| d.spec.len()).max().unwrap_or(0);
    for d in &devices {
        println!("{:width$}  {}", d.spec, d.description);
    }
    if !missing.is_empty() {
        println!(
            "not in this build: {} (rebuild with `cargo build --release --features {}`)",
            missing.join(", "),
            missing.join(",")
        );
    }
}
