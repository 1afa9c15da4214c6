//! Helpers shared by the integration tests: a loopback HTTP server and the binary.
#![allow(dead_code)]

/// The real MNIST test digits that ship with the repository (`data/mnist/`).
pub const MNIST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use md5::{Digest, Md5};

/// What the test server answers for one path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body and a correct Content-Length.
    Body(Vec<u8>),
    /// 200 announcing `claimed` bytes but sending only `body`, then closing.
    Short { body: Vec<u8>, claimed: usize },
    /// This status with a tiny text body.
    Status(u16),
}

pub struct Server {
    base: String,
    hits: Arc<AtomicUsize>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Start a server thread on an ephemeral loopback port; it counts every request.
pub fn serve(routes: &[(&str, Reply)]) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let routes: HashMap<String, Reply> = routes.iter().map(|(p, r)| (p.to_string(), r.clone())).collect();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = answer(stream, &routes);
        }
    });
    Server { base, hits }
}

fn answer(mut s: TcpStream, routes: &HashMap<String, Reply>) -> std::io::Result<()> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&req);
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = routes.get(&path).cloned().unwrap_or(Reply::Status(404));
    let (status, body, claimed) = match reply {
        Reply::Body(b) => ("200 OK".to_string(), b.clone(), b.len()),
        Reply::Short { body, claimed } => ("200 OK".to_string(), body, claimed),
        Reply::Status(code) => (format!("{code} Test"), b"no".to_vec(), 2),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)?;
    s.flush()?;
    s.shutdown(std::net::Shutdown::Both)
}

pub fn md5_hex(data: &[u8]) -> String {
    rethink::data::download::hex(&Md5::digest(data))
}

/// The single run directory under `out` (a run's `--out`), asserting there is exactly one.
pub fn only_run(out: &std::path::Path) -> std::path::PathBuf {
    let dirs: Vec<_> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// The `rethink` binary under test.
pub fn rethink() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rethink"))
}

/// Runs `rethink args…`, asserting success; returns stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = rethink().args(args).output().expect("binary runs");
    assert!(out.status.success(), "rethink {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `rethink args…`, asserting a clean failure: non-zero exit, no panic, and a one-line
/// error on stderr; returns that line.
pub fn run_err(args: &[&str]) -> String {
    let out: Output = rethink().args(args).output().expect("binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "rethink {args:?} should fail; stderr: {stderr}");
    assert_ne!(out.status.code(), Some(101), "rethink {args:?} panicked: {stderr}");
    assert!(!stderr.contains("panicked"), "rethink {args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected a one-line error for {args:?}, got:\n{stderr}");
    lines[0].to_string()
}

/// Parses `rethink kernel --no-progress <args>` exactly as the binary does.
pub fn kernel_config(args: &[&str]) -> anyhow::Result<rethink::kernel::config::KernelConfig> {
    let argv = ["rethink", "kernel", "--no-progress"].iter().chain(args);
    let rethink::cli::Command::Kernel(args) = <rethink::cli::Cli as clap::Parser>::parse_from(argv).command else {
        unreachable!("parsed a kernel command")
    };
    args.into_config()
}

/// Runs `rethink kernel --no-progress <args>` in-process.
pub fn kernel(args: &[&str]) -> anyhow::Result<rethink::kernel::KernelOutcome> {
    rethink::kernel::run(&kernel_config(args)?)
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}
