//! `rethink report`: the paper's figures and tables from finished run directories.

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Flags of `rethink report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Run directories, or directories holding runs (searched recursively).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Directory receiving the figures (PNG, SVG), their CSV data and the tables.
    #[arg(long, default_value = "figures")]
    pub out: PathBuf,
}

/// Runs `rethink report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    anyhow::bail!("rethink report is not written yet ({} directories, out {})", args.dirs.len(), args.out.display())
}
