//! Tokens of the filter language, each with its byte offset for errors.

use super::FilterError;

/// A token.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    /// A name: a function, a field, or `and`/`or`/`not`/`null`/`true`/`false`.
    Ident(String),
    /// A quoted string, escapes resolved.
    Str(String),
    /// A number.
    Num(f64, bool),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// `=`, `==`, `!=`, `<`, `<=`, `>`, `>=`
    Op(&'static str),
    /// End of input.
    End,
}

impl Tok {
    /// How the token reads in an error message.
    pub(super) fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Str(s) => format!("string {s:?}"),
            Tok::Num(n, _) => format!("number {n}"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Comma => "','".into(),
            Tok::Op(op) => format!("'{op}'"),
            Tok::End => "the end of the filter".into(),
        }
    }
}

/// Splits `src` into tokens with their byte offsets; the last is `End`.
pub(super) fn lex(src: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push((start, Tok::LParen)),
            b')' => out.push((start, Tok::RParen)),
            b'[' => out.push((start, Tok::LBracket)),
            b']' => out.push((start, Tok::RBracket)),
            b',' => out.push((start, Tok::Comma)),
            b'=' => {
                if bytes.get(i + 1) == Some(&b'=') {
                    i += 1;
                    out.push((start, Tok::Op("==")));
                } else {
                    out.push((start, Tok::Op("=")));
                }
            }
            b'!' if bytes.get(i + 1) == Some(&b'=') => {
                i += 1;
                out.push((start, Tok::Op("!=")));
            }
            b'<' | b'>' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, eq) {
                    (b'<', true) => "<=",
                    (b'<', false) => "<",
                    (_, true) => ">=",
                    _ => ">",
                };
                if eq {
                    i += 1;
                }
                out.push((start, Tok::Op(op)));
            }
            b'"' | b'\'' => {
                let (s, next) = string(src, i, c)?;
                out.push((start, Tok::Str(s)));
                i = next;
                continue;
            }
            b'-' | b'+' | b'.' | b'0'..=b'9' => {
                let mut j = i + 1;
                while j < bytes.len() && matches!(bytes[j], b'0'..=b'9' | b'.' | b'e' | b'E' | b'-' | b'+') {
                    // A sign inside a number is only valid right after an exponent.
                    if matches!(bytes[j], b'-' | b'+') && !matches!(bytes[j - 1], b'e' | b'E') {
                        break;
                    }
                    j += 1;
                }
                let text = &src[i..j];
                let is_int = !text.contains(['.', 'e', 'E']);
                let n: f64 =
                    text.parse().map_err(|_| FilterError::at(src, start, format!("invalid number {text:?}")))?;
                if !n.is_finite() {
                    return Err(FilterError::at(src, start, format!("number {text:?} is out of range")));
                }
                out.push((start, Tok::Num(n, is_int)));
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
                    j += 1;
                }
                out.push((start, Tok::Ident(src[i..j].to_string())));
                i = j;
                continue;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(FilterError::at(src, start, format!("unexpected character {ch:?}")));
            }
        }
        i += 1;
    }
    out.push((src.len(), Tok::End));
    Ok(out)
}

/// Reads a string literal starting at the quote at `start`; returns it and
/// the offset after the closing quote.
fn string(src: &str, start: usize, quote: u8) -> Result<(String, usize), FilterError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((off, ch)) = chars.next() {
        let at = start + 1 + off;
        match ch {
            c if c as u32 == quote as u32 => return Ok((out, at + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\'')) => out.push('\''),
                Some((_, '/')) => out.push('/'),
                Some((uoff, 'u')) => {
                    let hex_start = start + 1 + uoff + 1;
                    let hex = src.get(hex_start..hex_start + 4).unwrap_or("");
                    let code = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                    let c = code
                        .ok_or_else(|| FilterError::at(src, at, "invalid \\u escape; expected 4 hex digits".into()))?;
                    out.push(c);
                    for _ in 0..4 {
                        chars.next();
                    }
                }
                Some((_, other)) => {
                    return Err(FilterError::at(src, at, format!("unknown escape \\{other}")));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(FilterError::at(src, start, "unterminated string; add the closing quote".into()))
}
