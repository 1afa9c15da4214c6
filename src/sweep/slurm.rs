//! `--emit-slurm`: the sweep as a Slurm job array, one array task per point, each running
//! `rethink sweep SPEC --index $SLURM_ARRAY_TASK_ID`.

use super::Sweep;
use crate::atomic::write_atomic;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Writes the sbatch script for `sweep` to `file`. The sweep file is copied to
/// `<out>/<name>.sweep.toml`, so later edits of the original cannot renumber the points of a
/// submitted array; per-task logs go to `<out>/slurm/<job>_<task>.out`.
pub fn emit(sweep: &Sweep, file: &Path, array_max: Option<usize>, sbatch: &[String]) -> Result<()> {
    if array_max == Some(0) {
        bail!("--array-max must be at least 1");
    }
    for option in sbatch {
        if !option.starts_with('-') || option.contains('\n') {
            bail!("--sbatch {option:?} is not an sbatch option (e.g. --sbatch=--partition=gpu)");
        }
    }
    let out = absolute(&sweep.out)?;
    let logs = out.join("slurm");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let frozen = out.join(format!("{}.sweep.toml", sweep.spec.name));
    let text = std::fs::read(&sweep.spec_path)
        .with_context(|| format!("cannot read sweep file {}", sweep.spec_path.display()))?;
    write_atomic(&frozen, &text)?;
    let exe = std::env::current_exe().context("cannot find the rethink executable")?;
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let script = script(&ScriptParts {
        name: &sweep.spec.name,
        points: sweep.points.len(),
        array_max,
        sbatch,
        logs: &logs,
        cwd: &cwd,
        exe: &exe,
        spec: &frozen,
        out: &out,
        device: sweep.device,
    });
    write_atomic(file, script.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", file.display()))?;
    }
    eprintln!(
        "wrote {}: a job array of {} points (submit with: sbatch {}); logs in {}",
        file.display(),
        sweep.points.len(),
        file.display(),
        logs.display()
    );
    Ok(())
}

/// What goes into the script.
struct ScriptParts<'a> {
    name: &'a str,
    points: usize,
    array_max: Option<usize>,
    sbatch: &'a [String],
    logs: &'a Path,
    cwd: &'a Path,
    exe: &'a Path,
    spec: &'a Path,
    out: &'a Path,
    device: Option<crate::device::DeviceSpec>,
}

/// The sbatch script's text.
fn script(p: &ScriptParts) -> String {
    let throttle = p.array_max.map_or(String::new(), |m| format!("%{m}"));
    let mut s = String::from("#!/bin/bash\n");
    s.push_str(&format!("# rethink sweep {}: {} points as a Slurm job array.\n", p.name, p.points));
    s.push_str("# Each task trains one point (or resumes it; finished points are skipped), so\n");
    s.push_str("# resubmitting this script after a failure completes the sweep.\n");
    s.push_str(&format!("#SBATCH --job-name=rethink-{}\n", p.name));
    s.push_str(&format!("#SBATCH --array=0-{}{throttle}\n", p.points - 1));
    s.push_str(&format!("#SBATCH --output={}/%A_%a.out\n", p.logs.display()));
    for option in p.sbatch {
        s.push_str(&format!("#SBATCH {option}\n"));
    }
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("cd {}\n", quote(p.cwd)));
    s.push_str("# One task's cores: Slurm's allocation, else all the node's.\n");
    s.push_str("export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-${RAYON_NUM_THREADS:-}}\"\n");
    s.push_str("[ -n \"$RAYON_NUM_THREADS\" ] || unset RAYON_NUM_THREADS\n");
    let device = p.device.map(|d| format!(" --device {d}")).unwrap_or_default();
    s.push_str(&format!(
        "exec {} sweep {} --out {}{device} --index \"$SLURM_ARRAY_TASK_ID\"\n",
        quote(p.exe),
        quote(p.spec),
        quote(p.out)
    ));
    s
}

/// A path quoted for the shell.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// `path` made absolute against the current directory (it need not exist).
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_the_array_logs_options_and_command() {
        let text = script(&ScriptParts {
            name: "fig1",
            points: 18,
            array_max: Some(4),
            sbatch: &["--partition=gpu".into(), "--gres=gpu:1".into()],
            logs: Path::new("/r/slurm"),
            cwd: Path::new("/home/u/it's"),
            exe: Path::new("/bin/rethink"),
            spec: Path::new("/r/fig1.sweep.toml"),
            out: Path::new("/r"),
            device: "cuda:0".parse().ok(),
        });
        assert!(text.starts_with("#!/bin/bash\n"));
        assert!(text.contains("#SBATCH --array=0-17%4\n"));
        assert!(text.contains("#SBATCH --output=/r/slurm/%A_%a.out\n"));
        assert!(text.contains("#SBATCH --partition=gpu\n#SBATCH --gres=gpu:1\n"));
        assert!(text.contains("cd '/home/u/it'\\''s'\n"));
        assert!(
            text.ends_with(
                "exec '/bin/rethink' sweep '/r/fig1.sweep.toml' --out '/r' --device cuda:0 --index \"$SLURM_ARRAY_TASK_ID\"\n"
            )
        );
        // All #SBATCH lines come before the first command, or sbatch ignores them.
        let first_command = text.lines().position(|l| !l.starts_with('#')).unwrap();
        assert!(text.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
    }
}
