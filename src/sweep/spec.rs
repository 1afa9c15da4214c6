//! The sweep file: a `[base]` of `rethink train` (or `rethink kernel`) settings, a `[grid]`
//! whose lists multiply, and explicit `[[points]]`, expanded into the sweep's points in a fixed
//! order.
//!
//! ```toml
//! name = "quick"                      # optional: the sweep's name (default: the file's stem)
//! description = "what this sweep is"  # optional
//! command = "train"                   # optional: "train" (default) or "kernel"
//!
//! [base]                              # settings every point shares (flag long names)
//! arch = "mlp"
//! epochs = 30
//!
//! [grid]                              # every combination of these lists is a point
//! label_corrupt_prob = [0.0, 0.5, 1.0]
//!
//! [[points]]                          # explicit points (each is crossed with the grid)
//! randomize = "shuffled-pixels"
//! ```
//!
//! Keys are flags of the command by their long name, with `-` or `_`. Values are TOML strings,
//! numbers or booleans (a boolean switches a flag on, or off through its `--no-` form).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;
use toml::{Table, Value};

/// One point's settings: flag (kebab-case long name) → value, in the order they were written.
pub type Settings = Vec<(String, Value)>;

/// The command every point of a sweep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepCommand {
    /// `rethink train`: a network trained by SGD (Figure 1, Table 1).
    Train,
    /// `rethink kernel`: a kernel solve (section 5, and kernel fitting time against p).
    Kernel,
}

impl SweepCommand {
    /// The subcommand's name.
    pub fn name(self) -> &'static str {
        match self {
            SweepCommand::Train => "train",
            SweepCommand::Kernel => "kernel",
        }
    }
}

/// A parsed sweep file.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// The sweep's name (`name = …`, else the file's stem): the default output directory's.
    pub name: String,
    /// Free text describing the sweep.
    pub description: Option<String>,
    /// The command the points run.
    pub command: SweepCommand,
    /// Settings shared by every point.
    pub base: Settings,
    /// The grid's keys with their lists of values, in file order.
    pub grid: Vec<(String, Vec<Value>)>,
    /// The explicit points.
    pub points: Vec<Settings>,
}

/// One point of a sweep, before it is checked against `rethink train`'s flags.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSettings {
    /// Position in the sweep (0-based): the `--index` and the Slurm array task id.
    pub index: usize,
    /// Every setting of the point: base, then the point's own, then the grid's.
    pub settings: Settings,
    /// The settings that vary from point to point (from `[[points]]` and `[grid]`).
    pub own: Settings,
}

/// Flags a sweep sets itself, which a sweep file may not set.
const RESERVED: [&str; 5] = ["out", "resume", "run-name", "no-progress", "help"];

impl SweepSpec {
    /// Reads and parses the sweep file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read sweep file {}", path.display()))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("sweep");
        Self::parse(&text, stem).with_context(|| format!("invalid sweep file {}", path.display()))
    }

    /// Parses the text of a sweep file; `default_name` names it when it has no `name`.
    pub fn parse(text: &str, default_name: &str) -> Result<Self> {
        let table: Table = text.parse().map_err(|e: toml::de::Error| {
            anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("not valid TOML").trim())
        })?;
        let mut spec = SweepSpec {
            name: default_name.to_string(),
            description: None,
            command: SweepCommand::Train,
            base: Vec::new(),
            grid: Vec::new(),
            points: Vec::new(),
        };
        for (key, value) in table {
            match (key.as_str(), value) {
                ("name", Value::String(name)) => spec.name = name,
                ("description", Value::String(text)) => spec.description = Some(text),
                ("command", Value::String(command)) => {
                    spec.command = match command.as_str() {
                        "train" => SweepCommand::Train,
                        "kernel" => SweepCommand::Kernel,
                        other => bail!("command = {other:?}: expected \"train\" or \"kernel\""),
                    }
                }
                ("base", Value::Table(base)) => spec.base = settings(base, "[base]")?,
                ("grid", Value::Table(grid)) => {
                    for (key, values) in grid {
                        let Value::Array(values) = values else {
                            bail!("[grid] {key} must be a list of values, e.g. {key} = [0.0, 0.5]");
                        };
                        if values.is_empty() {
                            bail!("[grid] {key} is an empty list: the grid would have no points");
                        }
                        let key = flag_name(&key, "[grid]")?;
                        for value in &values {
                            scalar(&key, value, "[grid]")?;
                        }
                        spec.grid.push((key, values));
                    }
                }
                ("points", Value::Array(points)) => {
                    for (i, point) in points.into_iter().enumerate() {
                        let Value::Table(point) = point else {
                            bail!("[[points]] entry {i} must be a table of settings");
                        };
                        spec.points.push(settings(point, &format!("[[points]] entry {i}"))?);
                    }
                }
                ("name" | "description" | "command", _) => bail!("`{key}` must be a string"),
                ("base" | "grid", _) => bail!("`{key}` must be a table, [{key}]"),
                ("points", _) => bail!("`points` must be an array of tables, [[points]]"),
                _ => bail!(
                    "unknown top-level key `{key}` (expected name, description, command, [base], [grid], \
                     [[points]]; the command's settings go in [base])"
                ),
            }
        }
        if spec.grid.is_empty() && spec.points.is_empty() {
            bail!("the sweep has no points: give a [grid] of lists or [[points]] tables");
        }
        if spec.name.is_empty() || spec.name.contains(['/', '\\']) {
            bail!("name {:?} must be a plain directory name", spec.name);
        }
        Ok(spec)
    }

    /// Every point: each explicit point (or the base alone, without `[[points]]`) crossed with
    /// every combination of the grid, the grid's first key varying slowest.
    pub fn expand(&self) -> Result<Vec<PointSettings>> {
        let explicit = if self.points.is_empty() { vec![Vec::new()] } else { self.points.clone() };
        let mut out = Vec::new();
        for (p, point) in explicit.iter().enumerate() {
            if let Some((key, _)) = point.iter().find(|(k, _)| self.grid.iter().any(|(g, _)| g == k)) {
                bail!("[[points]] entry {p} sets `{key}`, which [grid] also sets: set it in one place");
            }
            for combination in grid_combinations(&self.grid) {
                let own: Settings = point.iter().cloned().chain(combination).collect();
                let mut settings: BTreeMap<&str, (usize, &Value)> = BTreeMap::new();
                for (order, (key, value)) in self.base.iter().chain(&own).enumerate() {
                    let first = settings.get(key.as_str()).map_or(order, |(o, _)| *o);
                    settings.insert(key, (first, value));
                }
                let mut settings: Vec<_> = settings.into_iter().collect();
                settings.sort_by_key(|(_, (order, _))| *order);
                let settings = settings.into_iter().map(|(k, (_, v))| (k.to_string(), v.clone())).collect();
                out.push(PointSettings { index: out.len(), settings, own });
            }
        }
        Ok(out)
    }
}

/// The settings of a `[base]` or `[[points]]` table, keys normalised to flag names.
fn settings(table: Table, place: &str) -> Result<Settings> {
    table
        .into_iter()
        .map(|(key, value)| {
            let key = flag_name(&key, place)?;
            scalar(&key, &value, place)?;
            Ok((key, value))
        })
        .collect()
}

/// `label_corrupt_prob` or `label-corrupt-prob` → `label-corrupt-prob`; refuses the flags a
/// sweep sets itself.
fn flag_name(key: &str, place: &str) -> Result<String> {
    let flag = key.trim_start_matches("--").replace('_', "-");
    if RESERVED.contains(&flag.as_str()) {
        bail!("{place}: `{key}` is set by rethink sweep itself (use `rethink sweep --out` for the output directory)");
    }
    Ok(flag)
}

/// Checks that a setting's value is a string, number or boolean.
fn scalar(key: &str, value: &Value, place: &str) -> Result<()> {
    match value {
        Value::String(_) | Value::Integer(_) | Value::Float(_) | Value::Boolean(_) => Ok(()),
        other => bail!("{place}: `{key}` must be a string, number or boolean, not {}", other.type_str()),
    }
}

/// Every combination of the grid's values, as settings, in row-major order.
fn grid_combinations(grid: &[(String, Vec<Value>)]) -> Vec<Settings> {
    let mut combos: Vec<Settings> = vec![Vec::new()];
    for (key, values) in grid {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |v| {
                    let mut c = combo.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    combos
}

/// A setting's value as `rethink train` reads it on its command line.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Float(f) => format!("{f}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(point: &PointSettings) -> Vec<String> {
        point.settings.iter().map(|(k, v)| format!("{k}={}", value_text(v))).collect()
    }

    #[test]
    fn grid_and_points_multiply_with_the_first_grid_key_slowest() {
        let spec = SweepSpec::parse(
            r#"
            [base]
            arch = "mlp"
            epochs = 3
            [grid]
            seed = [0, 1]
            label_corrupt_prob = [0.0, 0.5]
            [[points]]
            learning_rate = 0.01
            [[points]]
            learning-rate = 0.1
            arch = "alexnet"
            "#,
            "s",
        )
        .unwrap();
        assert_eq!(spec.name, "s");
        let points = spec.expand().unwrap();
        assert_eq!(points.len(), 8);
        assert_eq!(
            keys(&points[1]),
            ["arch=mlp", "epochs=3", "learning-rate=0.01", "seed=0", "label-corrupt-prob=0.5"]
        );
        assert_eq!(
            keys(&points[7]),
            ["arch=alexnet", "epochs=3", "learning-rate=0.1", "seed=1", "label-corrupt-prob=0.5"]
        );
        assert_eq!(points[7].index, 7);
        assert_eq!(points[7].own.len(), 4);
    }

    #[test]
    fn refuses_bad_files_with_the_reason() {
        let err = |text: &str| format!("{:#}", SweepSpec::parse(text, "s").unwrap_err());
        assert!(err("[grid]\nseed = []").contains("[grid] seed is an empty list"));
        assert!(err("[grid]\nseed = 3").contains("must be a list"));
        assert!(err("[base]\narch = \"mlp\"").contains("no points"));
        assert!(err("[grid]\n").contains("no points"));
        assert!(err("arch = \"mlp\"\n[grid]\nseed=[1]").contains("unknown top-level key `arch`"));
        assert!(err("[base]\nout = \"x\"\n[grid]\nseed=[1]").contains("set by rethink sweep"));
        assert!(err("[base]\nseed = [1]\n[grid]\nseed=[1]").contains("`seed` must be a string, number or boolean"));
        assert!(err("[grid\nseed=[1]").contains("TOML"));
        assert!(err("command = \"fit\"\n[grid]\nseed=[1]").contains("expected \"train\" or \"kernel\""));
        let kernel = SweepSpec::parse("command = \"kernel\"\n[grid]\nseed=[1]", "s").unwrap();
        assert_eq!(kernel.command, SweepCommand::Kernel);
        let both = SweepSpec::parse("[grid]\nseed=[1]\n[[points]]\nseed = 2", "s").unwrap();
        assert!(format!("{:#}", both.expand().unwrap_err()).contains("sets `seed`, which [grid] also sets"));
    }
}
