//! `fetch_verified` against a minimal HTTP/1.1 server on 127.0.0.1 (no other network).

mod common;

use common::{Reply, md5_hex, serve};
use rethink::data::download::*;
use std::path::Path;

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn part_of(dest: &Path) -> std::path::PathBuf {
    let mut name = dest.file_name().unwrap().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Files left in `dir`, sorted, for "nothing was left behind" checks.
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn good_file_is_downloaded_and_verified() {
    let body = payload(300_000);
    let server = serve(&[("/data.tar.gz", Reply::Body(body.clone()))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("sub/dir/data.tar.gz");
    // A stale partial file from an earlier crash must be overwritten, not appended to.
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(part_of(&dest), b"stale junk").unwrap();

    fetch_verified(&server.url("/data.tar.gz"), &dest, &md5_hex(&body), true).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(md5_file(&dest).unwrap(), md5_hex(&body));
    assert!(!part_of(&dest).exists());
    assert_eq!(listing(dest.parent().unwrap()), vec!["data.tar.gz"]);
    assert_eq!(server.hits(), 1);
}

#[test]
fn checksum_mismatch_leaves_nothing() {
    let body = payload(5000);
    let server = serve(&[("/f.bin", Reply::Body(body.clone()))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.bin");
    let url = server.url("/f.bin");
    let wrong = "00000000000000000000000000000000";
    let e = format!("{:#}", fetch_verified(&url, &dest, wrong, false).unwrap_err());
    assert!(e.contains("checksum") && e.contains(&url), "{e}");
    assert!(e.contains(wrong) && e.contains(&md5_hex(&body)), "{e}");
    assert!(!dest.exists());
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn connection_closed_early_leaves_nothing() {
    let body = payload(1000);
    let server = serve(&[("/short", Reply::Short { body: body.clone(), claimed: 4000 })]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("short.bin");
    let url = server.url("/short");
    let e = format!("{:#}", fetch_verified(&url, &dest, &md5_hex(&body), false).unwrap_err());
    assert!(e.contains(&url) && e.contains("closed after") && e.contains("of 4000 bytes"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(!dest.exists());
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn http_404_is_reported_with_status() {
    let server = serve(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("missing.bin");
    let url = server.url("/missing.bin");
    let e = format!("{:#}", fetch_verified(&url, &dest, &md5_hex(b"x"), false).unwrap_err());
    assert!(e.contains("404") && e.contains(&url), "{e}");
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
    assert_eq!(server.hits(), 1);
}

#[test]
fn existing_file_with_right_checksum_makes_no_request() {
    let body = payload(777);
    let server = serve(&[("/f", Reply::Body(body.clone()))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f");
    std::fs::write(&dest, &body).unwrap();
    // Upper-case expected digest is accepted too.
    fetch_verified(&server.url("/f"), &dest, &md5_hex(&body).to_uppercase(), true).unwrap();
    assert_eq!(server.hits(), 0);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
}

#[test]
fn existing_file_with_wrong_checksum_is_replaced() {
    let body = payload(2048);
    let server = serve(&[("/f", Reply::Body(body.clone()))]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f");
    std::fs::write(&dest, b"corrupted earlier download").unwrap();
    fetch_verified(&server.url("/f"), &dest, &md5_hex(&body), false).unwrap();
    assert_eq!(server.hits(), 1);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    assert_eq!(listing(tmp.path()), vec!["f"]);
}

#[test]
fn failed_download_keeps_previous_file_untouched() {
    let server = serve(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("keep");
    std::fs::write(&dest, b"old").unwrap();
    assert!(fetch_verified(&server.url("/nope"), &dest, &md5_hex(b"new"), false).is_err());
    assert_eq!(std::fs::read(&dest).unwrap(), b"old");
    assert_eq!(listing(tmp.path()), vec!["keep"]);
}

#[test]
fn refused_connection_names_the_url() {
    // Bind then drop a listener to get a loopback port with nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/x");
    let tmp = tempfile::tempdir().unwrap();
    let e = format!("{:#}", fetch_verified(&url, &tmp.path().join("x"), &md5_hex(b""), false).unwrap_err());
    assert!(e.contains(&url), "{e}");
    assert!(listing(tmp.path()).is_empty());
}
