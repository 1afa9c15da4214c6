//! Checksummed HTTP(S) downloads of dataset archives.
//!
//! [`fetch_verified`] is idempotent (an existing file with the right MD5 is kept without
//! touching the network) and atomic (the body is streamed into `<dest>.part` through
//! [`AtomicFile`], verified, fsynced and only then renamed to `dest`; on any failure the
//! `.part` file is deleted), so an interrupted or corrupted download can never be mistaken
//! for a dataset.

use std::fs::{self, File};
use std::io::{BufReader, ErrorKind, Read, Write};
use std::path::Path;
use std::time::Duration;

use crate::atomic::AtomicFile;

use anyhow::{Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use md5::{Digest, Md5};

/// Time allowed to establish a connection (including TLS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest silence tolerated while waiting for response bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Streaming buffer size.
const CHUNK: usize = 64 * 1024;

/// MD5 of the file at `path` as 32 lowercase hex digits, read in a streaming fashion.
pub fn md5_file(path: &Path) -> Result<String> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| anyhow!("{shown}: cannot open for checksum: {e}"))?;
    let mut reader = BufReader::with_capacity(CHUNK, file);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => bail!("{shown}: cannot read for checksum: {e}"),
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// `bytes` as lowercase hex digits, two per byte (as Python's `hexdigest()`): the form of
/// every checksum the crate prints or compares.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Make sure `dest` holds the file at `url` whose MD5 is `md5_hex`.
///
/// If `dest` already exists with that MD5, returns immediately without any network
/// access. Otherwise downloads `url` (http:// or https://, redirects followed) into
/// `dest` + ".part" in the same directory while hashing it, showing a byte progress bar
/// on stderr when `show_progress`, then checks the HTTP status, the byte count against
/// `Content-Length` and the MD5, fsyncs, and atomically renames it to `dest` (replacing
/// a stale file). On any failure the `.part` file is removed and `dest` is untouched.
pub fn fetch_verified(url: &str, dest: &Path, md5_hex: &str, show_progress: bool) -> Result<()> {
    let expected = md5_hex.trim().to_ascii_lowercase();
    if dest.is_file() {
        let actual = md5_file(dest)?;
        if actual == expected {
            return Ok(());
        }
        if show_progress {
            eprintln!("{}: checksum {actual} does not match expected {expected}, downloading again", dest.display());
        }
    }
    if dest.file_name().is_none() {
        bail!("{}: destination has no file name", dest.display());
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| anyhow!("{}: cannot create directory: {e}", parent.display()))?;
    }
    download_to(url, dest, &expected, show_progress)
}

/// Stream `url` into `dest`'s `.part` sibling, verifying status, length and MD5, then commit
/// it (fsync and rename to `dest`); on any error the `.part` file is deleted.
fn download_to(url: &str, dest: &Path, expected_md5: &str, show_progress: bool) -> Result<()> {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Ask for the bytes as stored: a transparently decoded body would not match the MD5.
        .accept_encoding("identity")
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_per_read(Some(READ_TIMEOUT));
    // Proxies come from the environment (HTTPS_PROXY, NO_PROXY, ...), but loopback
    // never goes through one, so local mirrors and test servers work behind a proxy.
    let config = if is_loopback(url) { config.proxy(None) } else { config }.build();
    let agent = ureq::Agent::new_with_config(config);
    let response = agent.get(url).call().map_err(|e| anyhow!("{url}: request failed: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        bail!("{url}: HTTP status {} {}", status.as_u16(), status.canonical_reason().unwrap_or(""));
    }
    let (_, body) = response.into_parts();
    let total = body.content_length();
    let mut reader = body.into_reader();

    let mut out = AtomicFile::with_suffix(dest, ".part")?;
    let part = out.temp_path().to_path_buf();
    let shown = part.display();
    let bar = progress_bar(show_progress, total, url);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    let mut got: u64 = 0;
    let closed_early = |got: u64, why: &dyn std::fmt::Display| match total {
        Some(t) => anyhow!("{url}: connection closed after {got} of {t} bytes ({why})"),
        None => anyhow!("{url}: download failed after {got} bytes ({why})"),
    };
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                bar.abandon();
                return Err(closed_early(got, &e));
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(|e| anyhow!("{shown}: cannot write: {e}"))?;
        got += n as u64;
        bar.inc(n as u64);
    }
    if let Some(t) = total
        && got != t
    {
        bar.abandon();
        return Err(closed_early(got, &"length mismatch"));
    }
    bar.finish_and_clear();

    let actual = hex(&hasher.finalize());
    if actual != expected_md5 {
        bail!("checksum mismatch for {url}: expected {expected_md5}, got {actual}");
    }
    // Verified: only now does the file replace `dest`.
    out.commit()
}

/// True when `url`'s host is `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A byte progress bar on stderr (hidden unless `show`); a spinner when the length is unknown.
fn progress_bar(show: bool, total: Option<u64>, url: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let name = url.rsplit('/').next().unwrap_or(url).to_string();
    let (bar, template) = match total {
        Some(t) => (ProgressBar::new(t), "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"),
        None => (ProgressBar::new_spinner(), "{msg} {spinner} {bytes} {bytes_per_sec}"),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("http://127.0.0.1:8080/x"));
        assert!(is_loopback("http://LOCALHOST/x"));
        assert!(is_loopback("http://u:p@[::1]:99/x"));
        assert!(!is_loopback("https://www.cs.toronto.edu/~kriz/a.tar.gz"));
        assert!(!is_loopback("http://127.0.0.1.example.com/"));
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff, 0x7b]), "000fa0ff7b");
    }

    #[test]
    fn md5_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("abc.txt");
        fs::write(&p, b"abc").unwrap();
        assert_eq!(md5_file(&p).unwrap(), "900150983cd24fb0d6963f7d28e17f72");
        fs::remove_file(&p).unwrap();
        let e = md5_file(&p).unwrap_err().to_string();
        assert!(e.contains("abc.txt"), "{e}");
    }
}
