//! Bodies: decompression up to a size, JSON with located errors, and a
//! count of JSON values that bounds what parsing will build.

use std::io::Read;

use bytes::Bytes;
use serde::Deserialize;

use crate::WireError;

/// Undoes `encoding` (`zstd`, `gzip`, none or `identity`), producing at
/// most `max` bytes: a small compressed bomb cannot exhaust memory. Every
/// member of a multi-member gzip stream is read, as `gzip -d` does.
pub fn decompress(encoding: Option<&str>, raw: Bytes, max: usize) -> Result<Bytes, WireError> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("zstd") => match zstd::stream::read::Decoder::new(raw.as_ref()) {
            Ok(decoder) => inflate(decoder, "zstd", max),
            Err(e) => Err(WireError::Malformed(format!("corrupt zstd body: {e}"))),
        },
        Some("gzip") => inflate(flate2::read::MultiGzDecoder::new(raw.as_ref()), "gzip", max),
        Some(other) => {
            Err(WireError::Unsupported(format!("unsupported Content-Encoding {other:?}; use zstd, gzip or none")))
        }
    }
}

fn inflate(reader: impl Read, name: &str, max: usize) -> Result<Bytes, WireError> {
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly at" from "over".
    match reader.take(max as u64 + 1).read_to_end(&mut out) {
        Ok(_) if out.len() > max => {
            Err(WireError::TooLarge(format!("decompressed {name} body exceeds the limit of {max} bytes")))
        }
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(WireError::Malformed(format!("corrupt {name} body: {e}"))),
    }
}

/// Adds the values of JSON text `bytes` to `used`, refusing more than
/// `max`: parsed values cost tens of bytes each however short their text
/// (`[0,0,...]` is two bytes a value in, thirty-two out).
pub fn check_values(bytes: &[u8], what: impl Fn() -> String, used: &mut usize, max: usize) -> Result<(), WireError> {
    *used += json_values(bytes);
    if *used > max {
        return Err(WireError::TooLarge(format!(
            "{} holds more than {max} JSON values (limits.max_json_values)",
            what()
        )));
    }
    Ok(())
}

/// An upper bound on the number of values (and keys) in a JSON text: the
/// separators and openings outside strings, plus one. Linear, allocates
/// nothing.
pub fn json_values(bytes: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (1usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'[' | b'{' | b',' | b':' => n += 1,
                _ => {}
            }
        }
    }
    n
}

/// Parses JSON, naming the path and position of the first problem; bytes
/// after the value (other than whitespace) are refused, not ignored.
pub fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, WireError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." { String::new() } else { format!(" at {path}") };
        WireError::Malformed(format!("invalid {what}{at}: {inner}"))
    })?;
    de.end().map_err(|e| WireError::Malformed(format!("invalid {what}: {e} (after the JSON value)")))?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn json_errors_name_the_path() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            items: Vec<Item>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Item {
            n: u32,
        }
        let err = json::<T>(br#"{"items": [{"n": 1}, {"n": "x"}]}"#, "body").unwrap_err().to_string();
        assert!(err.contains("items[1].n"), "{err}");
        let err = json::<T>(b"{", "body").unwrap_err().to_string();
        assert!(err.contains("invalid body") && err.contains("line 1"), "{err}");
        let err = json::<T>(br#"{"items": []} }}}garbage"#, "body").unwrap_err().to_string();
        assert!(err.contains("trailing characters") && err.contains("after the JSON value"), "{err}");
        assert!(json::<T>(b"{\"items\": []}\n  ", "body").is_ok(), "trailing whitespace is fine");
    }

    #[test]
    fn values_are_counted_outside_strings() {
        assert_eq!(json_values(b"0"), 1);
        assert_eq!(json_values(b"[0,0,0]"), 4);
        assert_eq!(json_values(br#"{"a,b:[{": 1, "c\\\"[": [2]}"#), 6);
        let err = check_values(b"[0,0,0]", || "the body".into(), &mut 0, 3).unwrap_err();
        assert!(err.to_string().contains("limits.max_json_values"));
    }

    #[test]
    fn decompression_is_bounded_and_reads_every_gzip_member() {
        let bomb = Bytes::from(zstd::encode_all(&vec![0u8; 1 << 20][..], 3).unwrap());
        assert!(bomb.len() < 1000);
        let err = decompress(Some("zstd"), bomb.clone(), 1000).unwrap_err();
        assert!(matches!(err, WireError::TooLarge(_)));
        assert_eq!(decompress(Some("ZSTD "), bomb, 1 << 20).unwrap().len(), 1 << 20);
        let err = decompress(Some("gzip"), Bytes::from_static(b"garbage"), 100).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)));
        let member = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, text).unwrap();
            e.finish().unwrap()
        };
        let two = Bytes::from([member(b"{\"post\": []"), member(b"}")].concat());
        assert_eq!(&decompress(Some("gzip"), two, 100).unwrap()[..], b"{\"post\": []}");
        assert!(matches!(decompress(Some("br"), Bytes::new(), 1), Err(WireError::Unsupported(_))));
    }
}
