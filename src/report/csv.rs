//! The CSV files written beside each figure and table: a header row and data rows, fields
//! quoted only when they hold a comma, a quote or a line break (RFC 4180).

use crate::atomic::write_atomic;
use anyhow::Result;
use std::path::Path;

/// A CSV table built row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct Csv {
    columns: usize,
    text: String,
}

impl Csv {
    /// A table with these column names.
    pub fn new(header: &[&str]) -> Self {
        let mut csv = Self { columns: header.len(), text: String::new() };
        csv.push_line(header.iter().map(|h| h.to_string()));
        csv
    }

    /// Appends a row; it must have as many fields as the header.
    pub fn row(&mut self, fields: Vec<String>) {
        debug_assert_eq!(fields.len(), self.columns, "CSV row width");
        self.push_line(fields.into_iter());
    }

    /// The whole file.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Writes the table to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.text.as_bytes())
    }

    fn push_line(&mut self, fields: impl Iterator<Item = String>) {
        let line: Vec<String> = fields.map(|f| quote(&f)).collect();
        self.text.push_str(&line.join(","));
        self.text.push('\n');
    }
}

/// `field`, quoted if it needs to be.
pub fn quote(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// A number as CSV text: shortest round-trip digits, empty for a missing value.
pub fn num(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_when_needed() {
        let mut csv = Csv::new(&["model", "note"]);
        csv.row(vec!["MLP 1x512".into(), "plain".into()]);
        csv.row(vec!["a,b".into(), "say \"hi\"".into()]);
        assert_eq!(csv.text(), "model,note\nMLP 1x512,plain\n\"a,b\",\"say \"\"hi\"\"\"\n");
        assert_eq!(num(Some(0.5)), "0.5");
        assert_eq!(num(Some(100.0)), "100");
        assert_eq!(num(None), "");
    }
}
