//! Memory budget: what a solve needs, what the machine has, and a refusal that says both.
//!
//! A 60,000-point kernel matrix is 7.2 GB even in f32 and lower-triangle-only storage; being
//! killed by the OOM killer after minutes of work is the worst outcome. So every solver first
//! lists the large buffers it will allocate ([`MemoryPlan`]), and [`check`] compares their sum
//! with the memory available now — `MemAvailable` of `/proc/meminfo`, optionally capped by
//! `--max-memory` — before anything big is allocated.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// Bytes in one GiB, for messages.
pub const GIB: f64 = (1u64 << 30) as f64;

/// Formats a byte count as GiB with two decimals (`14.41 GiB`).
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB)
}

/// The large allocations of one solve, each with a name for the refusal message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryPlan {
    /// (what, bytes) for every buffer worth mentioning.
    pub items: Vec<(String, u64)>,
}

impl MemoryPlan {
    /// Adds one named buffer.
    pub fn add(&mut self, what: impl Into<String>, bytes: u64) -> &mut Self {
        self.items.push((what.into(), bytes));
        self
    }

    /// Total bytes of all buffers.
    pub fn total(&self) -> u64 {
        self.items.iter().map(|(_, b)| b).sum()
    }

    /// `"7.21 GiB f32 tiles + 0.38 GiB features"`: the breakdown used in messages.
    pub fn breakdown(&self) -> String {
        self.items.iter().map(|(what, b)| format!("{} {what}", gib(*b))).collect::<Vec<_>>().join(" + ")
    }
}

/// Memory the solve may use: where the number comes from and how large it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Bytes that may be allocated.
    pub bytes: u64,
    /// Where `bytes` comes from, for messages (`MemAvailable in /proc/meminfo`, `--max-memory`).
    pub source: String,
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes (`None` if the line is missing or bad).
pub fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(value * 1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The memory budget: `MemAvailable` of `meminfo` (normally `/proc/meminfo`), capped by
/// `max_gib` (`--max-memory`) when given. Without a readable meminfo, `--max-memory` is needed.
pub fn budget(meminfo: &Path, max_gib: Option<f64>) -> Result<Budget> {
    let available = std::fs::read_to_string(meminfo).ok().and_then(|text| parse_mem_available(&text));
    let cap = max_gib.map(|g| (g * GIB) as u64);
    match (available, cap) {
        (Some(a), Some(c)) if c < a => Ok(Budget { bytes: c, source: "--max-memory".into() }),
        (Some(a), _) => Ok(Budget { bytes: a, source: format!("MemAvailable in {}", meminfo.display()) }),
        (None, Some(c)) => Ok(Budget { bytes: c, source: "--max-memory".into() }),
        (None, None) => Err(anyhow::anyhow!(
            "{}: no MemAvailable line; pass --max-memory GIB to say how much memory may be used",
            meminfo.display()
        )),
    }
}

/// Refuses (with needed vs available and the breakdown) when `plan` does not fit `budget`.
pub fn check(plan: &MemoryPlan, budget: &Budget, hint: &str) -> Result<()> {
    let needed = plan.total();
    if needed > budget.bytes {
        bail!(
            "not enough memory: the solve needs {} ({}) but only {} is available ({}){}",
            gib(needed),
            plan.breakdown(),
            gib(budget.bytes),
            budget.source,
            if hint.is_empty() { String::new() } else { format!("; {hint}") }
        );
    }
    Ok(())
}

/// Peak resident memory of this process so far (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Allocates a zeroed vector of `len` elements, failing with a message instead of aborting
/// the process when the allocator refuses (zeroed pages are only committed when written).
pub fn try_zeroed<T: Copy + Default>(len: usize, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .with_context(|| format!("cannot allocate {} for {what}", gib((len * size_of::<T>()) as u64)))?;
    v.resize(len, T::default());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24684084 kB\nMemFree:        21557912 kB\n\
                           MemAvailable:   23947464 kB\nBuffers:           12868 kB\n";

    #[test]
    fn parses_mem_available() {
        assert_eq!(parse_mem_available(MEMINFO), Some(23947464 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: x kB\n"), None);
    }

    #[test]
    fn budget_takes_the_smaller_of_meminfo_and_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meminfo");
        std::fs::write(&path, MEMINFO).unwrap();
        let b = budget(&path, None).unwrap();
        assert_eq!(b.bytes, 23947464 * 1024);
        assert!(b.source.contains("MemAvailable"));
        let b = budget(&path, Some(1.0)).unwrap();
        assert_eq!((b.bytes, b.source.as_str()), (1 << 30, "--max-memory"));
        let b = budget(&path, Some(1000.0)).unwrap();
        assert_eq!(b.bytes, 23947464 * 1024);
        let missing = dir.path().join("nope");
        assert!(budget(&missing, None).unwrap_err().to_string().contains("--max-memory"));
        assert_eq!(budget(&missing, Some(2.0)).unwrap().bytes, 2 << 30);
    }

    #[test]
    fn refuses_with_needed_and_available() {
        let mut plan = MemoryPlan::default();
        plan.add("f64 kernel tiles", 15 << 30).add("features", 1 << 29);
        let budget = Budget { bytes: 12 << 30, source: "MemAvailable in /proc/meminfo".into() };
        let msg = check(&plan, &budget, "try --precision f32-refined").unwrap_err().to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        for part in [
            "needs 15.50 GiB",
            "15.00 GiB f64 kernel tiles",
            "0.50 GiB features",
            "12.00 GiB",
            "MemAvailable",
            "f32-refined",
        ] {
            assert!(msg.contains(part), "{part:?} missing in {msg}");
        }
        let roomy = Budget { bytes: 16 << 30, source: "x".into() };
        check(&plan, &roomy, "").unwrap();
    }

    #[test]
    fn peak_rss_is_known_on_linux() {
        assert!(peak_rss().unwrap() > 0);
    }
}
