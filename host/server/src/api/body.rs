//! Reading request bodies safely: size limits, decompression, JSON with
//! errors that name the offending path.
//!
//! A body is read up to `max_body_bytes` as sent; a `Content-Encoding` of
//! `zstd` or `gzip` is then decoded up to `max_decompressed_bytes`, so a
//! small compressed bomb cannot exhaust memory. JSON errors carry the path
//! of the bad value (`post[3].start_time`) and the line and column.

use std::io::Read;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_ENCODING;
use bytes::Bytes;
use serde::Deserialize;

use super::error::ApiError;
use crate::config::Limits;

/// Reads the whole body, enforcing the limits and undoing `Content-Encoding`.
pub(crate) async fn read(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Bytes, ApiError> {
    let raw = axum::body::to_bytes(body, limits.max_body_bytes).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::TooLarge(format!("request body exceeds the limit of {} bytes", limits.max_body_bytes))
        } else {
            ApiError::BadRequest(format!("cannot read request body: {e}"))
        }
    })?;
    let encoding = headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("zstd") => match zstd::stream::read::Decoder::new(raw.as_ref()) {
            Ok(decoder) => decode(decoder, "zstd", limits.max_decompressed_bytes),
            Err(e) => Err(ApiError::BadRequest(format!("corrupt zstd body: {e}"))),
        },
        // Every member of a multi-member gzip stream, as `gzip -d` reads it.
        Some("gzip") => decode(flate2::read::MultiGzDecoder::new(raw.as_ref()), "gzip", limits.max_decompressed_bytes),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "unsupported Content-Encoding {other:?}; use zstd, gzip or none"
        ))),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn decode(reader: impl Read, name: &str, max: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly at" from "over".
    let read = reader.take(max as u64 + 1).read_to_end(&mut out);
    match read {
        Ok(_) if out.len() > max => {
            Err(ApiError::TooLarge(format!("decompressed {name} body exceeds the limit of {max} bytes")))
        }
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(ApiError::BadRequest(format!("corrupt {name} body: {e}"))),
    }
}

/// [`read`], for a body that is one JSON text: refused up front when it
/// holds more values than `limits.max_json_values`, because parsed values
/// cost tens of bytes each however short their text (`[0,0,...]` is two
/// bytes a value in, thirty-two out).
pub(crate) async fn read_json(headers: &HeaderMap, body: Body, limits: Limits) -> Result<Bytes, ApiError> {
    let bytes = read(headers, body, limits).await?;
    check_values(&bytes, "the body", &mut 0, limits.max_json_values)?;
    Ok(bytes)
}

/// Adds the values of JSON text `bytes` to `used`, refusing more than `max`.
pub(crate) fn check_values(bytes: &[u8], what: &str, used: &mut usize, max: usize) -> Result<(), ApiError> {
    *used += json_values(bytes);
    if *used > max {
        return Err(ApiError::TooLarge(format!("{what} holds more than {max} JSON values (limits.max_json_values)")));
    }
    Ok(())
}

/// An upper bound on the number of values (and keys) in a JSON text: the
/// separators and openings outside strings, plus one. Linear, allocates
/// nothing.
pub(crate) fn json_values(bytes: &[u8]) -> usize {
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
pub(crate) fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let at = if path == "." { String::new() } else { format!(" at {path}") };
        ApiError::BadRequest(format!("invalid {what}{at}: {inner}"))
    })?;
    de.end().map_err(|e| ApiError::BadRequest(format!("invalid {what}: {e} (after the JSON value)")))?;
    Ok(value)
}

/// Refuses a list longer than `max`, naming it and the limit's setting.
pub(crate) fn check_list(what: &str, len: usize, max: usize, setting: &str) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::BadRequest(format!("{what} has {len} items; at most {max} are accepted ({setting})")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
        assert_eq!(json_values(br#"{"a,b:[{": 1, "c\\\"[": [2]}"#), 5);
        assert!(
            check_values(b"[0,0,0]", "the body", &mut 0, 3).unwrap_err().to_string().contains("limits.max_json_values")
        );
    }

    #[test]
    fn decompression_is_bounded() {
        let bomb = zstd::encode_all(&vec![0u8; 1 << 20][..], 3).unwrap();
        assert!(bomb.len() < 1000);
        let err = decode(zstd::stream::read::Decoder::new(&bomb[..]).unwrap(), "zstd", 1000).unwrap_err();
        assert!(matches!(err, ApiError::TooLarge(_)));
        let ok = decode(zstd::stream::read::Decoder::new(&bomb[..]).unwrap(), "zstd", 1 << 20).unwrap();
        assert_eq!(ok.len(), 1 << 20);
        let err = decode(flate2::read::MultiGzDecoder::new(&b"garbage"[..]), "gzip", 100).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(_)));
        // Two members: both are read.
        let member = |text: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut e, text).unwrap();
            e.finish().unwrap()
        };
        let two = [member(b"{\"post\": []"), member(b"}")].concat();
        let whole = decode(flate2::read::MultiGzDecoder::new(&two[..]), "gzip", 100).unwrap();
        assert_eq!(&whole[..], b"{\"post\": []}");
    }
}
