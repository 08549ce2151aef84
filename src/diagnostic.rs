//! One error type for everything `check` reports: a message at a place in a user's file,
//! printed as `file:line:col: message` with the line and a caret under the fault; and the
//! TOML reading with places that config and mapping files share.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// An error located in a file the user edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub file: PathBuf,
    /// 1-based line (0 when the error has no place in the file).
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
    /// Short lowercase message.
    pub message: String,
    /// The text of the offending line.
    pub source_line: String,
    /// How many characters the caret underlines.
    pub width: usize,
}

impl Diagnostic {
    /// A diagnostic at byte range `span` of `src` (the content of `file`).
    pub fn at(
        file: &Path,
        src: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        let Some(span) = span else {
            return Self {
                file: file.into(),
                line: 0,
                col: 0,
                message,
                source_line: String::new(),
                width: 0,
            };
        };
        let start = floor_char(src, span.start.min(src.len()));
        let line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let line = src[..start].matches('\n').count() + 1;
        let col = src[line_start..start].chars().count() + 1;
        let end = floor_char(src, span.end.clamp(start, line_end));
        let width = src[start..end].chars().count().max(1);
        Self {
            file: file.into(),
            line,
            col,
            message,
            source_line: src[line_start..line_end].trim_end_matches('\r').to_owned(),
            width,
        }
    }

    /// A diagnostic about the file as a whole (unreadable, missing).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Self::at(file, "", None, message)
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.file.display(), self.message);
        }
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        let gutter = self.line.to_string().len();
        writeln!(f, "{:gutter$} |", "")?;
        writeln!(f, "{} | {}", self.line, self.source_line)?;
        let pad: String = self
            .source_line
            .chars()
            .take(self.col - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{:gutter$} | {pad}{}", "", "^".repeat(self.width))
    }
}

/// A regular-expression error on one line: the `regex` crate prints the pattern and a caret
/// over several lines, which a diagnostic already does better.
pub fn regex_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => {
            let reason = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("syntax error");
            format!("invalid regular expression: {reason}")
        }
        other => format!("invalid regular expression: {other}"),
    }
}

/// Several diagnostics, printed one after another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Deserialises one spanned TOML value, reporting a failure at its place.
pub fn de<T: DeserializeOwned>(
    file: &Path,
    src: &str,
    v: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(v.clone())) {
        Ok(t) => Some(t),
        Err(e) => {
            let span = e.span().unwrap_or_else(|| v.span());
            diags.push(Diagnostic::at(
                file,
                src,
                Some(span),
                e.message().to_owned(),
            ));
            None
        }
    }
}

/// Parses a TOML document keeping places; syntax errors become diagnostics.
pub fn parse_table<'s>(
    file: &Path,
    src: &'s str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<DeTable<'s>>> {
    let (table, errors) = DeTable::parse_recoverable(src);
    for e in &errors {
        diags.push(Diagnostic::at(file, src, e.span(), e.message().to_owned()));
    }
    errors.is_empty().then_some(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_line_and_column_with_caret() {
        let src = "a = 1\nsource = \"$..[\"\n";
        let start = src.find("\"$").unwrap();
        let d = Diagnostic::at(Path::new("m.toml"), src, Some(start..start + 6), "bad path");
        assert_eq!((d.line, d.col), (2, 10));
        let text = d.to_string();
        assert!(text.starts_with("m.toml:2:10: bad path\n"), "{text}");
        assert!(text.ends_with("  |          ^^^^^^"), "{text}");
    }
}
