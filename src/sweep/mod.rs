//! `rethink sweep SPEC.toml`: a grid of training runs (the paper's Figure 1 and Table 1), or of
//! kernel solves (`command = "kernel"`: fitting time against label noise), from one TOML file,
//! run locally a few at a time, one point per Slurm array task, or listed.
//!
//! Each point is an ordinary run directory under `--out`. Finished points are skipped and
//! unfinished ones resumed from their checkpoint, so re-running a sweep completes it without
//! redoing work; a lock per run directory keeps two processes off the same point.

pub mod point;
pub mod runner;
pub mod slurm;
pub mod spec;

use crate::cli::SweepArgs;
use crate::device::DeviceSpec;
use anyhow::{Result, bail};
use point::{Point, Status};
use spec::SweepSpec;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A loaded sweep: its file, its checked points and where they go.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file.
    pub spec_path: PathBuf,
    /// The parsed file.
    pub spec: SweepSpec,
    /// The points, in index order.
    pub points: Vec<Point>,
    /// Root of the run directories.
    pub out: PathBuf,
    /// `--device`: the device every point trains on, overriding the sweep file.
    pub device: Option<DeviceSpec>,
}

impl Sweep {
    /// Loads the sweep file and checks every point before anything runs.
    pub fn load(spec_path: &Path, out: Option<&Path>) -> Result<Self> {
        let spec = SweepSpec::load(spec_path)?;
        let invalid = |e: anyhow::Error| anyhow::anyhow!("invalid sweep file {}: {e:#}", spec_path.display());
        let points = spec
            .expand()
            .map_err(invalid)?
            .iter()
            .map(|p| Point::new(p, spec.command))
            .collect::<Result<Vec<_>>>()
            .map_err(invalid)?;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for p in &points {
            if let Some(first) = seen.insert(&p.dir_name, p.index) {
                return Err(invalid(anyhow::anyhow!(
                    "points {first} and {} are the same run ({}): remove one, or make them differ",
                    p.index,
                    p.dir_name
                )));
            }
        }
        let out = out.map_or_else(|| Path::new("runs").join(&spec.name), Path::to_path_buf);
        Ok(Self { spec_path: spec_path.to_path_buf(), spec, points, out, device: None })
    }

    /// Trains every point on `device` (`--device`), whatever the sweep file says.
    pub fn set_device(&mut self, device: DeviceSpec) -> Result<()> {
        self.device = Some(device);
        for point in &mut self.points {
            point.set_device(device)?;
        }
        Ok(())
    }

    /// Each point's status.
    pub fn statuses(&self) -> Vec<Status> {
        self.points.iter().map(|p| p.status(&self.out)).collect()
    }

    /// `--list`: every point with its index, status and run directory.
    pub fn list(&self) -> String {
        let statuses = self.statuses();
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for s in &statuses {
            let key = match s {
                Status::Done => "done",
                Status::Partial { .. } => "partial",
                Status::Pending => "pending",
                Status::Running => "running",
                Status::Conflict(_) => "conflict",
            };
            match counts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => counts.push((key, 1)),
            }
        }
        let summary = counts.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ");
        let mut text =
            format!("sweep {}: {} points in {} ({summary})\n", self.spec.name, self.points.len(), self.out.display());
        for (p, s) in self.points.iter().zip(&statuses) {
            text.push_str(&format!("{:>4}  {:<20}  {}  [{}]\n", p.index, s.to_string(), p.dir_name, p.label));
        }
        text
    }
}

/// Runs `rethink sweep`.
pub fn run(args: &SweepArgs) -> Result<()> {
    if args.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let mut sweep = Sweep::load(&args.spec, args.out.as_deref())?;
    if let Some(device) = args.device {
        sweep.set_device(device)?;
    }
    if args.list {
        print!("{}", sweep.list());
        return Ok(());
    }
    if let Some(file) = &args.emit_slurm {
        return slurm::emit(&sweep, file, args.array_max, &args.sbatch);
    }
    if let Some(index) = args.index {
        return runner::run_one(&sweep, index);
    }
    let outcome = runner::run_all(&sweep, args.jobs)?;
    if !args.no_report {
        let report_dir = sweep.out.join("report");
        match report(&sweep.out, &report_dir) {
            Ok(()) => eprintln!("report: {}", report_dir.display()),
            Err(err) => eprintln!("report not written: {err:#}"),
        }
    }
    outcome.into_result()
}

/// `rethink report OUT --out REPORT_DIR` with the report's defaults.
fn report(out: &Path, report_dir: &Path) -> Result<()> {
    let argv = [
        "rethink".into(),
        "report".into(),
        out.as_os_str().to_owned(),
        "--out".into(),
        report_dir.as_os_str().to_owned(),
    ];
    match <crate::cli::Cli as clap::Parser>::try_parse_from(argv)?.command {
        crate::cli::Command::Report(args) => crate::report::run(&args),
        _ => unreachable!("parsed a report command"),
    }
}
