//! Located configuration errors: [`ConfigError`] and [`ConfigErrors`].

use std::fmt;

use crate::node::Mark;

/// One problem in the configuration, with the full key path and the place it
/// was written.
///
/// Displays as `{file}:{line}:{col}: {path}: {message} (did you mean `x`?)`;
/// parts that are unknown (no line, empty path, no suggestion) are left out.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// Full dotted key path from the root, e.g. `output.file.pth`. Empty for
    /// problems with the whole document.
    pub path: String,
    /// Where the offending value was written.
    pub mark: Mark,
    /// What is wrong, in plain words.
    pub message: String,
    /// A likely intended key or value, if one is close enough.
    pub suggestion: Option<String>,
}

impl ConfigError {
    /// A new error without a suggestion.
    pub fn new(path: impl Into<String>, mark: Mark, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            mark,
            message: message.into(),
            suggestion: None,
        }
    }

    /// Attach a suggestion.
    pub fn with_suggestion(mut self, suggestion: Option<String>) -> Self {
        self.suggestion = suggestion;
        self
    }

    fn render(&self) -> String {
        let mut out = String::new();
        if self.mark.file.is_some() || self.mark.line > 0 {
            out.push_str(&self.mark.to_string());
            out.push_str(": ");
        }
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        if let Some(s) = &self.suggestion {
            out.push_str(&format!(" (did you mean `{s}`?)"));
        }
        out
    }
}

/// Several configuration problems, reported together (`skiff test config`
/// lists all of them). Never empty when returned as an error.
#[derive(Clone, Debug, Default, PartialEq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The errors, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no errors.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else `Err(self)`.
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn display_full_and_partial() {
        let e = ConfigError::new(
            "output.file.pth",
            Mark {
                file: Some(Arc::from("filebeat.yml")),
                line: 3,
                column: 5,
            },
            "unknown key `pth`",
        )
        .with_suggestion(Some("path".into()));
        assert_eq!(
            e.to_string(),
            "filebeat.yml:3:5: output.file.pth: unknown key `pth` (did you mean `path`?)"
        );
        let e = ConfigError::new("", Mark::none(), "boom");
        assert_eq!(e.to_string(), "boom");
        let e = ConfigError::new("a.b", Mark::override_flag(), "bad");
        assert_eq!(e.to_string(), "-E: a.b: bad");
        let all = ConfigErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string(), "-E: a.b: bad\n-E: a.b: bad");
    }
}
