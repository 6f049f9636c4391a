//! One physical line of the config to its syntactic shape.
//!
//! Rules (see `docs/config.md`): a `#` outside double quotes starts a comment that runs to the
//! end of the line; surrounding whitespace (spaces, tabs) is ignored; control characters other
//! than tab are refused anywhere, comments included, because they are invisible on screen and
//! a stray one usually means a corrupted file. This layer knows nothing about which sections
//! and keys exist: that is [`super::sections`].

use alloc::string::ToString;

use super::ConfigErrorKind;

/// What a line is, with comment and surrounding whitespace removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// Empty, whitespace or comment only.
    Blank,
    /// `[kind]` or `[kind arg]`.
    Section { kind: &'a str, arg: Option<&'a str> },
    /// `key = value`; the value is trimmed but still carries its quotes, if any.
    KeyValue { key: &'a str, value: &'a str },
}

/// Classifies one line (without its line terminator).
pub(crate) fn classify(raw: &str) -> Result<Line<'_>, ConfigErrorKind> {
    if let Some(bad) = raw.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(ConfigErrorKind::ControlCharacter {
            code: u32::from(bad),
        });
    }
    let text = strip_comment(raw).trim_matches(is_blank);
    if text.is_empty() {
        return Ok(Line::Blank);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return section_header(text, rest);
    }
    match text.split_once('=') {
        Some((key, value)) => {
            let key = key.trim_matches(is_blank);
            if key.is_empty() {
                return Err(ConfigErrorKind::MalformedLine {
                    text: text.to_string(),
                });
            }
            Ok(Line::KeyValue {
                key,
                value: value.trim_matches(is_blank),
            })
        }
        None => Err(ConfigErrorKind::MalformedLine {
            text: text.to_string(),
        }),
    }
}

/// Removes the value's surrounding double quotes, if it has them. A quote anywhere else, or an
/// opening quote without its closing one, is an error (the returned text is what was expected).
pub(crate) fn unquote(value: &str) -> Result<&str, &'static str> {
    match value.strip_prefix('"') {
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains('"') => Ok(inner),
            Some(_) => Err("no double quote inside a quoted value"),
            None => Err("a closing double quote at the end of the value"),
        },
        None if value.contains('"') => {
            Err("double quotes only around the whole value, like \"a b\"")
        }
        None => Ok(value),
    }
}

/// Whitespace the format ignores around tokens.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The line up to its first `#` that is not inside double quotes.
fn strip_comment(raw: &str) -> &str {
    let mut in_quotes = false;
    for (at, c) in raw.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return raw.get(..at).unwrap_or(""),
            _ => {}
        }
    }
    raw
}

/// Parses `[kind]` / `[kind arg]`; `text` is the whole trimmed line, `rest` what follows `[`.
fn section_header<'a>(text: &'a str, rest: &'a str) -> Result<Line<'a>, ConfigErrorKind> {
    let bad = |expected| ConfigErrorKind::BadSectionHeader {
        header: text.to_string(),
        expected,
    };
    let Some((inside, after)) = rest.split_once(']') else {
        return Err(bad("a closing `]`"));
    };
    if !after.trim_matches(is_blank).is_empty() {
        return Err(bad("nothing after `]` but a comment"));
    }
    let mut words = inside.split(is_blank).filter(|w| !w.is_empty());
    let Some(kind) = words.next() else {
        return Err(bad("a section name between the brackets"));
    };
    let arg = words.next();
    if words.next().is_some() {
        return Err(bad("[NAME] or [vm NAME], without more words"));
    }
    Ok(Line::Section { kind, arg })
}
