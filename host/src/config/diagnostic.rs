//! Config errors that say where (file:line:column), what (field path) and
//! how to fix it (hint).

use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based line and column, when the error points into the file.
    pub position: Option<(usize, usize)>,
    /// The field path, e.g. `routes[2].proxy`.
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Diagnostics for one source text; turns byte spans into line:column.
pub struct Reporter<'a> {
    pub file: &'a str,
    pub text: &'a str,
    pub errors: Vec<Diagnostic>,
    /// The text was made from a JSON file: errors name JSON pointers, not
    /// places in the text.
    pub json: bool,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Reporter {
            file,
            text,
            errors: Vec::new(),
            json: false,
        }
    }

    /// The line and column a span starts at.
    pub fn position(&self, span: Range<usize>) -> (usize, usize) {
        line_col(self.text, span.start)
    }

    pub fn error(
        &mut self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl std::fmt::Display,
        hint: impl Into<String>,
    ) {
        // A JSON config's text is made from it: its places say nothing.
        let position = span
            .filter(|s| !self.json && *s != (0..0))
            .map(|s| line_col(self.text, s.start));
        let field = field.into();
        let field = match self.json {
            true => super::graph::pointer(&field),
            false => field,
        };
        self.errors.push(Diagnostic {
            file: self.file.to_string(),
            position,
            field,
            message: message.to_string(),
            hint: hint.into(),
        });
    }
}

pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// All diagnostics of a failed load, printed one per paragraph.
#[derive(Debug)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 8), (2, 3));
    }
}
