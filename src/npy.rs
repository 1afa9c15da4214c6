//! The 1-D `.npy` vectors a run leaves behind (`fitted_epoch.npy`, `corrupted.npy`): written
//! by `rethink train`, read back by `rethink report`.
//!
//! Reading accepts only what `rethink train` writes — a 1-D little-endian `int64` or a `uint8`
//! vector — and everything else is refused with an error that says what was found: a wrong
//! magic string, an unknown format version, a header that is not numpy's dict literal, another
//! dtype, another shape, or a data section of the wrong length.

use anyhow::{Context, Result, bail};
use std::path::Path;

/// The numpy magic string every `.npy` file starts with.
const MAGIC: &[u8] = b"\x93NUMPY";

/// A 1-D `.npy` file (format 1.0) of little-endian int64 values.
pub fn npy_i64(values: &[i64]) -> Vec<u8> {
    npy("<i8", values.len(), &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
}

/// A 1-D `.npy` file (format 1.0) of bytes (numpy `|u1`), e.g. a 0/1 mask.
pub fn npy_u8(values: &[u8]) -> Vec<u8> {
    npy("|u1", values.len(), values)
}

fn npy(descr: &str, len: usize, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
    // Magic (6) + version (2) + header length (2) + header, padded to a multiple of 64 with a
    // final newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// What an `.npy` header declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// The dtype string, e.g. `<i8`.
    pub descr: String,
    /// Whether the array is stored in Fortran order.
    pub fortran_order: bool,
    /// The array's shape.
    pub shape: Vec<usize>,
    /// Offset of the first data byte.
    pub data_offset: usize,
}

/// Parses the header of an `.npy` file held in `bytes` (format versions 1.0, 2.0 and 3.0).
pub fn parse_header(bytes: &[u8]) -> Result<NpyHeader> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        bail!("not an .npy file (no \\x93NUMPY magic)");
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let Some(len) = bytes.get(8..12) else { bail!("truncated .npy header") };
            (u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize, 12)
        }
        _ => bail!("unsupported .npy format version {major}.{minor}"),
    };
    let Some(raw) = bytes.get(start..start + len) else {
        bail!("truncated .npy header: {len} bytes announced, {} present", bytes.len() - start)
    };
    let text = std::str::from_utf8(raw).context("the .npy header is not text")?;
    let dict = parse_dict(text).with_context(|| format!("malformed .npy header {:?}", text.trim_end()))?;
    let mut descr = None;
    let mut fortran_order = None;
    let mut shape = None;
    for (key, value) in dict {
        match (key.as_str(), value) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("fortran_order", Value::Bool(b)) => fortran_order = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (key @ ("descr" | "fortran_order" | "shape"), value) => {
                bail!("malformed .npy header: {key} is {value:?}")
            }
            (key, _) => bail!("malformed .npy header: unknown key {key:?}"),
        }
    }
    let (Some(descr), Some(fortran_order), Some(shape)) = (descr, fortran_order, shape) else {
        bail!("malformed .npy header: it needs descr, fortran_order and shape")
    };
    Ok(NpyHeader { descr, fortran_order, shape, data_offset: start + len })
}

/// The data bytes of a 1-D array whose dtype is one of `descrs`, each element `item` bytes.
fn vector_bytes<'a>(bytes: &'a [u8], descrs: &[&str], item: usize) -> Result<(&'a [u8], usize)> {
    let header = parse_header(bytes)?;
    if !descrs.contains(&header.descr.as_str()) {
        bail!("dtype {:?} where {} was expected", header.descr, descrs.join(" or "));
    }
    let [n] = header.shape[..] else { bail!("shape {:?} where a 1-D vector was expected", header.shape) };
    let data = &bytes[header.data_offset..];
    if data.len() != n * item {
        bail!("{} data bytes where shape ({n},) needs {}", data.len(), n * item);
    }
    Ok((data, n))
}

/// Parses a 1-D little-endian `int64` `.npy` vector.
pub fn parse_i64(bytes: &[u8]) -> Result<Vec<i64>> {
    let (data, _) = vector_bytes(bytes, &["<i8"], 8)?;
    Ok(data.chunks_exact(8).map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect())
}

/// Parses a 1-D `uint8` `.npy` vector.
pub fn parse_u8(bytes: &[u8]) -> Result<Vec<u8>> {
    let (data, _) = vector_bytes(bytes, &["|u1", "<u1", ">u1", "u1"], 1)?;
    Ok(data.to_vec())
}

/// Reads `path` and parses it with `parse`, naming the file in any error.
pub fn read<T>(path: &Path, parse: impl Fn(&[u8]) -> Result<T>) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}", path.display()))
}

/// A value of the header's Python dict literal.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// Parses numpy's header, a Python dict literal such as
/// `{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }` followed by padding.
fn parse_dict(text: &str) -> Result<Vec<(String, Value)>> {
    let mut p = Parser { rest: text.trim_end_matches(['\n', ' ', '\0']) };
    p.expect('{')?;
    let mut entries = Vec::new();
    loop {
        if p.eat('}') {
            break;
        }
        let key = p.string()?;
        p.expect(':')?;
        let value = p.value()?;
        entries.push((key, value));
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    if !p.rest.trim().is_empty() {
        bail!("text after the closing brace");
    }
    Ok(entries)
}

/// A cursor over the header text.
struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, c: char) -> Result<()> {
        if !self.eat(c) {
            bail!("expected {c:?} at {:?}", self.rest.chars().take(12).collect::<String>());
        }
        Ok(())
    }

    fn string(&mut self) -> Result<String> {
        self.skip_space();
        let Some(quote) = self.rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            bail!("expected a quoted string at {:?}", self.rest.chars().take(12).collect::<String>())
        };
        let body = &self.rest[1..];
        let Some(end) = body.find(quote) else { bail!("unterminated string") };
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    fn value(&mut self) -> Result<Value> {
        self.skip_space();
        if self.rest.starts_with(['\'', '"']) {
            return self.string().map(Value::Str);
        }
        for (word, b) in [("True", true), ("False", false)] {
            if let Some(rest) = self.rest.strip_prefix(word) {
                self.rest = rest;
                return Ok(Value::Bool(b));
            }
        }
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                break;
            }
            self.skip_space();
            let digits = self.rest.len() - self.rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                bail!("expected a dimension at {:?}", self.rest.chars().take(12).collect::<String>());
            }
            dims.push(self.rest[..digits].parse().context("dimension out of range")?);
            self.rest = &self.rest[digits..];
            if !self.eat(',') {
                self.expect(')')?;
                break;
            }
        }
        Ok(Value::Tuple(dims))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_layout_is_numpy_format_1() {
        let bytes = npy_i64(&[-1, 2, 3]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(&bytes[10 + header_len..10 + header_len + 8], &(-1i64).to_le_bytes());
        assert_eq!(bytes.len(), 10 + header_len + 24);
    }

    /// A format-1.0 file with `header` (padded like numpy) and `data`.
    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        let total = 10 + h.len() + 1;
        h.push_str(&" ".repeat(total.next_multiple_of(64) - total));
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_what_train_writes() {
        assert_eq!(parse_i64(&npy_i64(&[-1, 0, 7, i64::MAX])).unwrap(), vec![-1, 0, 7, i64::MAX]);
        assert_eq!(parse_u8(&npy_u8(&[0, 1, 1])).unwrap(), vec![0, 1, 1]);
        assert_eq!(parse_i64(&npy_i64(&[])).unwrap(), Vec::<i64>::new());
        let header = parse_header(&npy_i64(&[1, 2])).unwrap();
        assert_eq!(header.descr, "<i8");
        assert!(!header.fortran_order);
        assert_eq!(header.shape, vec![2]);
        assert_eq!(header.data_offset % 64, 0);
    }

    #[test]
    fn reads_numpy_variants() {
        // Double quotes, no trailing comma, a version-2.0 header.
        let f = file("{\"descr\": \"|u1\", \"shape\": (2,), \"fortran_order\": False}", &[1, 0]);
        assert_eq!(parse_u8(&f).unwrap(), vec![1, 0]);
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        let h = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\n";
        v2.extend_from_slice(&(h.len() as u32).to_le_bytes());
        v2.extend_from_slice(h.as_bytes());
        v2.extend_from_slice(&5i64.to_le_bytes());
        assert_eq!(parse_i64(&v2).unwrap(), vec![5]);
    }

    #[test]
    fn refuses_malformed_files_with_a_reason() {
        let err = |bytes: &[u8]| format!("{:#}", parse_i64(bytes).unwrap_err());
        assert!(err(b"PK\x03\x04 zip").contains("magic"));
        assert!(err(b"\x93NUMPY\x09\x00\x10\x00").contains("version 9.0"));
        let mut short = npy_i64(&[1, 2]);
        short.truncate(20);
        assert!(err(&short).contains("truncated .npy header"));
        assert!(err(&file("{'descr': '<i8', 'fortran_order': False, 'shape': (2,", &[])).contains("malformed"));
        assert!(err(&file("{'descr': '<i8' 'shape': (1,)}", &[0; 8])).contains("malformed"));
        assert!(err(&file("{'descr': '<i8', 'shape': (1,)}", &[0; 8])).contains("needs descr"));
        assert!(err(&file("{'descr': '<i8', 'fortran_order': 0, 'shape': (1,)}", &[0; 8])).contains("fortran_order"));
        assert!(
            err(&file("{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", &[0; 8])).contains("dtype \"<f8\"")
        );
        assert!(err(&file("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 2), }", &[0; 32])).contains("1-D"));
        assert!(
            err(&file("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", &[0; 16])).contains("16 data bytes")
        );
        assert!(
            err(&file("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", &[0; 9])).contains("9 data bytes")
        );
        assert!(format!("{:#}", parse_u8(&npy_i64(&[1])).unwrap_err()).contains("dtype \"<i8\""));
    }
}
