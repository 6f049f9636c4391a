//! Splits a console line into words: whitespace separates, double quotes group (so a VM name
//! or a path may contain spaces), and inside quotes `\"` and `\\` stand for `"` and `\`.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a line could not be split into words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenizeError {
    /// A `"` was opened and never closed.
    UnterminatedQuote,
    /// A closing quote was followed directly by a non-space character (`"a"b`).
    TextAfterQuote,
}

impl core::fmt::Display for TokenizeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TokenizeError::UnterminatedQuote => write!(f, "unterminated quote"),
            TokenizeError::TextAfterQuote => write!(f, "closing quote must be followed by a space"),
        }
    }
}

/// Splits `line` into words (see the module documentation).
pub fn tokenize(line: &str) -> Result<Vec<String>, TokenizeError> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(TokenizeError::UnterminatedQuote),
                    Some('"') => break,
                    Some('\\') if matches!(chars.peek(), Some('"') | Some('\\')) => {
                        word.extend(chars.next());
                    }
                    Some(c) => word.push(c),
                }
            }
            if chars.peek().is_some_and(|c| !c.is_whitespace()) {
                return Err(TokenizeError::TextAfterQuote);
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                word.push(c);
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Result<Vec<String>, TokenizeError> {
        tokenize(s)
    }

    #[test]
    fn splits_on_any_whitespace() {
        assert_eq!(t("  vm   start\tweb  ").unwrap(), ["vm", "start", "web"]);
        assert!(t("").unwrap().is_empty());
        assert!(t("   \t ").unwrap().is_empty());
    }

    #[test]
    fn quotes_group_and_escape() {
        assert_eq!(
            t(r#"say "hello world" x"#).unwrap(),
            ["say", "hello world", "x"]
        );
        assert_eq!(t(r#""a \"b\" \\ c""#).unwrap(), [r#"a "b" \ c"#]);
        assert_eq!(t(r#""""#).unwrap(), [""]);
        assert_eq!(t(r#""\n""#).unwrap(), [r"\n"]);
        // A quote in the middle of a bare word is an ordinary character.
        assert_eq!(t(r#"a"b"#).unwrap(), [r#"a"b"#]);
    }

    #[test]
    fn malformed_quotes_are_errors() {
        assert_eq!(t(r#"vm start "web"#), Err(TokenizeError::UnterminatedQuote));
        assert_eq!(t(r#""a"b"#), Err(TokenizeError::TextAfterQuote));
        assert_eq!(t(r#""a\""#), Err(TokenizeError::UnterminatedQuote));
    }
}
