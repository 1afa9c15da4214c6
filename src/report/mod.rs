//! `rethink report`: the paper's figures and tables from finished run directories.
//!
//! Reads run directories (no training) and writes, under `--out`:
//! `figure1a` (training loss vs. SGD steps per randomization test), `figure1b` (time to fit
//! relative to true labels vs. label corruption p), `figure1c` (test error vs. p),
//! `memorization` (clean vs. corrupted examples for 0 < p < 1) — each as PNG, SVG and CSV —
//! `table1.md`/`table1.csv` (the paper's Table 1), and `kernel_fit` (passes over K until
//! kernel CG fits the labels vs. p, from `rethink kernel` solves). A figure without the runs it needs is
//! skipped with a one-line reason; an unreadable run is skipped with a one-line reason.

pub mod csv;
pub mod figure1;
pub mod kernel_fit;
pub mod memorization;
pub mod names;
pub mod plot;
pub mod runs;
pub mod table1;

use anyhow::{Context, Result, bail};
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
    /// Train accuracy (percent) that counts as fitted for Figure 1b's time to fit.
    #[arg(long, default_value_t = 100.0, value_name = "A")]
    pub fit_threshold: f64,
}

/// What producing one figure or table came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// These files were written.
    Written(Vec<PathBuf>),
    /// Not written, for this reason.
    Skipped(String),
}

/// Writes a figure (PNG, SVG) and the CSV of its numbers under `out`, as `<stem>.*`.
fn write_figure(figure: &plot::Figure, csv: &csv::Csv, out: &std::path::Path, stem: &str) -> Result<Outcome> {
    let mut paths = plot::save(figure, out, stem)?;
    let csv_path = out.join(format!("{stem}.csv"));
    csv.save(&csv_path)?;
    paths.push(csv_path);
    Ok(Outcome::Written(paths))
}

/// Runs `rethink report`.
pub fn run(args: &ReportArgs) -> Result<()> {
    if !(args.fit_threshold > 0.0 && args.fit_threshold <= 100.0) {
        bail!("--fit-threshold {} must be in (0, 100]", args.fit_threshold);
    }
    let mut notes = Vec::new();
    let loaded = runs::load_runs(&args.dirs, &mut notes);
    for note in notes.drain(..) {
        eprintln!("{note}");
    }
    let all = loaded?;
    let kernel_runs = load_kernel_runs(&args.dirs);
    if all.is_empty() && kernel_runs.is_empty() {
        let dirs: Vec<String> = args.dirs.iter().map(|d| d.display().to_string()).collect();
        bail!("no readable run in {}", dirs.join(", "));
    }
    for run in all.iter().filter(|r| !r.finished()) {
        eprintln!(
            "note: {} has no results.json (unfinished after {} epochs): drawn in figure1a only",
            run.dir.display(),
            run.metrics.len()
        );
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let out = args.out.as_path();
    let mut outcomes = Vec::new();
    if !all.is_empty() {
        outcomes.extend([
            ("figure1a", figure1::figure1a(&all, out, &mut notes)?),
            ("figure1b", figure1::figure1b(&all, args.fit_threshold, out, &mut notes)?),
            ("figure1c", figure1::figure1c(&all, out)?),
            ("memorization", memorization::memorization(&all, out, &mut notes)?),
            ("table1", table1::table1(&all, out)?),
        ]);
    }
    if !kernel_runs.is_empty() {
        outcomes.push(("kernel_fit", kernel_fit::kernel_fit(&kernel_runs, out, &mut notes)?));
    }
    for note in &notes {
        eprintln!("note: {note}");
    }
    let finished = all.iter().filter(|r| r.finished()).count();
    println!("read {} runs ({finished} finished) and {} kernel solves", all.len(), kernel_runs.len());
    for (name, outcome) in outcomes {
        match outcome {
            Outcome::Written(paths) => {
                for path in paths {
                    println!("wrote {}", path.display());
                }
            }
            Outcome::Skipped(reason) => eprintln!("skipped {name}: {reason}"),
        }
    }
    Ok(())
}

/// Every kernel solve (a directory with a `result.json`) under `dirs`; one that cannot be read
/// is skipped with a one-line note.
fn load_kernel_runs(dirs: &[PathBuf]) -> Vec<kernel_fit::KernelRun> {
    let mut found: Vec<PathBuf> =
        dirs.iter().flat_map(|d| runs::find_dirs_with(d, "result.json").unwrap_or_default()).collect();
    found.sort();
    found.dedup();
    found
        .iter()
        .filter_map(|dir| match kernel_fit::KernelRun::load(dir) {
            Ok(run) => Some(run),
            Err(err) => {
                eprintln!("skipped kernel solve: {err:#}");
                None
            }
        })
        .collect()
}
