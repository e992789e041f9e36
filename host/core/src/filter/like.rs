//! SQL `LIKE` and case-insensitive substring search in time linear in the
//! text, whatever the pattern.
//!
//! The textbook matcher backtracks to the last `%` and takes O(text x
//! pattern) on `%aaaa…ab` over a long run of `a`: ten seconds of one core
//! for a 10,000-character pattern over a 1M-character field. Here a pattern
//! is cut at its `%` into segments, each a fixed number of characters; the
//! first is anchored at the start and the last at the end, and each one in
//! between is matched at its leftmost place after the previous one (which
//! is always right: a later place can only leave less room for the rest).
//! A segment of plain characters is found with `memchr`'s substring search,
//! linear in the text; one with `_` by a bit-parallel shift-and over the
//! characters, O(text x segment / 64).

use memchr::memmem;

/// One character of a segment: a given one, or any (`_`).
#[derive(Debug, Clone, PartialEq)]
enum Unit {
    Lit(char),
    Any,
}

/// A run of a pattern between two `%`.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Plain characters, searched as bytes (UTF-8 never matches inside a
    /// character).
    Text(String),
    /// With at least one `_`.
    Units(Vec<Unit>),
}

/// A compiled `LIKE` pattern: `%` any run, `_` one character, `\` escapes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Like {
    /// The parts between `%`s: one more than there are `%` runs.
    segments: Vec<Segment>,
}

impl Like {
    /// Compiles `pattern`.
    pub(crate) fn compile(pattern: &str) -> Self {
        let mut parts: Vec<Vec<Unit>> = vec![Vec::new()];
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            let unit = match c {
                '%' => {
                    if parts.last().is_some_and(|p| !p.is_empty()) || parts.len() == 1 {
                        parts.push(Vec::new());
                    }
                    continue;
                }
                '_' => Unit::Any,
                '\\' => Unit::Lit(chars.next().unwrap_or('\\')),
                c => Unit::Lit(c),
            };
            if let Some(last) = parts.last_mut() {
                last.push(unit);
            }
        }
        let segments = parts
            .into_iter()
            .map(|units| {
                if units.iter().all(|u| matches!(u, Unit::Lit(_))) {
                    Segment::Text(
                        units.iter().filter_map(|u| if let Unit::Lit(c) = u { Some(*c) } else { None }).collect(),
                    )
                } else {
                    Segment::Units(units)
                }
            })
            .collect();
        Self { segments }
    }

    /// Whether the whole of `text` matches.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let Some((first, rest)) = self.segments.split_first() else {
            return text.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `%`: the one segment is the whole text.
            return first.prefix(text) == Some(text.len());
        };
        let Some(mut at) = first.prefix(text) else {
            return false;
        };
        let Some(end) = last.suffix(&text[at..]).map(|start| at + start) else {
            return false;
        };
        for segment in middle {
            match segment.find(&text[at..end]) {
                Some(after) => at += after,
                None => return false,
            }
        }
        true
    }
}

impl Segment {
    /// Where the segment ends when it matches at the start of `text`.
    fn prefix(&self, text: &str) -> Option<usize> {
        match self {
            Segment::Text(t) => text.starts_with(t.as_str()).then_some(t.len()),
            Segment::Units(units) => {
                let mut chars = text.char_indices();
                for unit in units {
                    let (_, c) = chars.next()?;
                    if let Unit::Lit(want) = unit
                        && *want != c
                    {
                        return None;
                    }
                }
                Some(chars.next().map_or(text.len(), |(i, _)| i))
            }
        }
    }

    /// Where the segment starts when it matches at the end of `text`.
    fn suffix(&self, text: &str) -> Option<usize> {
        match self {
            Segment::Text(t) => text.ends_with(t.as_str()).then(|| text.len() - t.len()),
            Segment::Units(units) => {
                let mut chars = text.char_indices().rev();
                let mut start = text.len();
                for unit in units.iter().rev() {
                    let (i, c) = chars.next()?;
                    if let Unit::Lit(want) = unit
                        && *want != c
                    {
                        return None;
                    }
                    start = i;
                }
                Some(start)
            }
        }
    }

    /// Where the leftmost match in `text` ends.
    fn find(&self, text: &str) -> Option<usize> {
        match self {
            Segment::Text(t) => memmem::find(text.as_bytes(), t.as_bytes()).map(|i| i + t.len()),
            Segment::Units(units) => shift_and(units, text),
        }
    }
}

/// Bit-parallel matching with `_` wildcards: bit `k` of the state says the
/// last `k + 1` characters match the segment's first `k + 1`.
fn shift_and(units: &[Unit], text: &str) -> Option<usize> {
    let m = units.len();
    if m == 0 {
        return Some(0);
    }
    let words = m.div_ceil(64);
    // Positions a character may take: its own plus every `_`.
    let mut any = vec![0u64; words];
    let mut by_char: Vec<(char, Vec<u64>)> = Vec::new();
    for (k, unit) in units.iter().enumerate() {
        if *unit == Unit::Any {
            any[k / 64] |= 1 << (k % 64);
        }
    }
    for (k, unit) in units.iter().enumerate() {
        if let Unit::Lit(c) = unit {
            let at = match by_char.iter().position(|(x, _)| x == c) {
                Some(i) => i,
                None => {
                    by_char.push((*c, any.clone()));
                    by_char.len() - 1
                }
            };
            by_char[at].1[k / 64] |= 1 << (k % 64);
        }
    }
    by_char.sort_unstable_by_key(|(c, _)| *c);
    let last = (m - 1) % 64;
    let mut state = vec![0u64; words];
    for (i, c) in text.char_indices() {
        let mask = match by_char.binary_search_by_key(&c, |(x, _)| *x) {
            Ok(at) => &by_char[at].1,
            Err(_) => &any,
        };
        let mut carry = 1u64;
        for (word, bits) in state.iter_mut().zip(mask) {
            let next_carry = *word >> 63;
            *word = ((*word << 1) | carry) & bits;
            carry = next_carry;
        }
        if state[words - 1] >> last & 1 == 1 {
            return Some(i + c.len_utf8());
        }
    }
    None
}

/// Whether `hay` contains `needle` ignoring ASCII case; `needle` is
/// already lowercase. Linear in `hay`: a text with capitals is lowered into
/// a buffer kept per thread (no allocation once it has grown), then
/// searched with `memchr`.
pub(crate) fn contains_ci(hay: &str, needle: &str) -> bool {
    thread_local! {
        static LOWERED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if needle.is_empty() {
        return true;
    }
    if needle.len() > hay.len() {
        return false;
    }
    if !hay.bytes().any(|b| b.is_ascii_uppercase()) {
        return memmem::find(hay.as_bytes(), needle.as_bytes()).is_some();
    }
    LOWERED.with(|buffer| {
        let mut lowered = buffer.borrow_mut();
        lowered.clear();
        lowered.extend(hay.bytes().map(|b| b.to_ascii_lowercase()));
        let found = memmem::find(&lowered, needle.as_bytes()).is_some();
        // A huge field does not keep its buffer.
        if lowered.capacity() > 1 << 20 {
            *lowered = Vec::new();
        }
        found
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook backtracking matcher, as the reference.
    fn reference(pattern: &str, text: &str) -> bool {
        #[derive(PartialEq)]
        enum T {
            Any,
            One,
            Lit(char),
        }
        let mut pat = Vec::new();
        let mut it = pattern.chars();
        while let Some(c) = it.next() {
            pat.push(match c {
                '%' => T::Any,
                '_' => T::One,
                '\\' => T::Lit(it.next().unwrap_or('\\')),
                c => T::Lit(c),
            });
        }
        let text: Vec<char> = text.chars().collect();
        let (mut pi, mut ti, mut star) = (0usize, 0usize, None::<(usize, usize)>);
        while ti < text.len() {
            match pat.get(pi) {
                Some(T::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                }
                Some(T::One) => (pi, ti) = (pi + 1, ti + 1),
                Some(T::Lit(c)) if *c == text[ti] => (pi, ti) = (pi + 1, ti + 1),
                _ => match star {
                    Some((sp, st)) => (pi, ti, star) = (sp + 1, st + 1, Some((sp, st + 1))),
                    None => return false,
                },
            }
        }
        pat[pi..].iter().all(|t| *t == T::Any)
    }

    #[test]
    fn agrees_with_the_backtracking_matcher() {
        let patterns = [
            "", "%", "%%", "a", "_", "a%", "%a", "%a%", "a_c", "%a_c%", "a%b%c", "%ab%ab%", "_%_", "%__%", "é_%",
            "%\\%%", "a\\_b", "%aa%a", "ab%ba", "%b_a_%", "___", "a%", "%é", "x%y_z%", "%_a_%",
        ];
        let texts =
            ["", "a", "b", "ab", "abc", "aXc", "aabab", "abba", "é", "éa", "a%b", "a_b", "aab", "xyzz", "xayaz", "bab"];
        for p in patterns {
            for t in texts {
                assert_eq!(Like::compile(p).matches(t), reference(p, t), "pattern {p:?} on {t:?}");
            }
        }
        // Every pattern over a small alphabet, every text up to length 5.
        let alphabet = ['a', 'b', '%', '_'];
        let mut pats = vec![String::new()];
        for _ in 0..4 {
            pats = pats.iter().flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}"))).collect();
            for p in &pats {
                let mut texts = vec![String::new()];
                for _ in 0..5 {
                    texts = texts.iter().flat_map(|t| ["a", "b"].map(|c| format!("{t}{c}"))).collect();
                    for t in &texts {
                        assert_eq!(Like::compile(p).matches(t), reference(p, t), "pattern {p:?} on {t:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn long_segments_with_wildcards_span_words() {
        let pattern = format!("%{}_b%", "a".repeat(130));
        let text = format!("x{}zb", "a".repeat(130));
        assert!(Like::compile(&pattern).matches(&text));
        assert!(!Like::compile(&pattern).matches(&text.replace("zb", "zc")));
    }

    #[test]
    fn case_insensitive_search() {
        assert!(contains_ci("Rate LIMIT exceeded", "limit"));
        assert!(!contains_ci("rate", "limit"));
        assert!(contains_ci("anything", ""));
    }
}
