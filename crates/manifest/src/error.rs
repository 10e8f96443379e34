//! Errors that point at the exact place in a file, with a hint on how to fix it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// An error in a manifest or runtime-config file.
///
/// Displays as `file:line:column: message` followed by a `hint:` line, so editors and
/// terminals can jump straight to the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// The file the error is in.
    pub file: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub location: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl ManifestError {
    /// An error about the file as a whole (unreadable, missing, ...).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            location: None,
            message: message.into(),
            hint: None,
        }
    }

    /// An error at a place recorded while parsing (see [`crate::Location`]).
    pub fn at(file: &Path, at: crate::Location, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            location: Some((at.line, at.column)),
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// Adds a hint to the error.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// Turns byte offsets into `file:line:column` errors for one source text.
#[derive(Debug, Clone)]
pub struct SourceFile<'a> {
    path: &'a Path,
    text: &'a str,
}

impl<'a> SourceFile<'a> {
    /// Wraps the text read from `path`.
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Self { path, text }
    }

    /// The file's text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// An error located at the start of `span`.
    pub fn error(&self, span: Range<usize>, message: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.path.to_path_buf(),
            location: Some(self.line_col(span.start)),
            message: message.into(),
            hint: None,
        }
    }

    /// Converts a `toml` deserialisation error, keeping its location.
    pub fn toml_error(&self, err: &toml::de::Error) -> ManifestError {
        let message = err.message().trim().to_string();
        let hint = if message.starts_with("unknown field") {
            "check the key's spelling; the README lists every key Tessera reads"
        } else if message.starts_with("invalid type") {
            "check the value's type against the README's list of keys"
        } else if message.starts_with("missing field") {
            "add the missing key"
        } else {
            "fix the TOML syntax at this place"
        };
        ManifestError {
            file: self.path.to_path_buf(),
            location: err.span().map(|s| self.line_col(s.start)),
            message,
            hint: Some(hint.to_string()),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        let src = SourceFile::new(Path::new("x.toml"), text);
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        assert_eq!(src.line_col(text.find('=').unwrap()), (1, 3));
        assert_eq!(src.line_col(text.rfind('=').unwrap()), (2, 4));
    }
}
