//! Names from the traced system (file names, comms) are untrusted bytes. Everything
//! printed, written to CSV or put in JSON goes through `escape` first, so a file named
//! with a terminal escape or a newline cannot forge output or corrupt a record.

use std::borrow::Cow;

/// Printable UTF-8 passes through; a backslash becomes `\\`; `\n`, `\r`, `\t` keep
/// their C escapes; other control characters (C0, DEL, C1) become `\xNN` / `\u{NN}`;
/// bytes that are not valid UTF-8 become `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    escape_cow(bytes).into_owned()
}

/// As `escape`, without a copy when nothing needs escaping: printable ASCII with no
/// backslash, which most names are (the JSON-lines writer's hot path).
pub fn escape_cow(bytes: &[u8]) -> Cow<'_, str> {
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return Cow::Borrowed(s);
        }
    }
    Cow::Owned(escape_slow(bytes))
}

fn escape_slow(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn plain_names_unchanged() {
        assert_eq!(escape(b"usr/lib/libc.so.6"), "usr/lib/libc.so.6");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
    }

    #[test]
    fn control_and_escape_sequences() {
        assert_eq!(escape(b"a\nb"), "a\\nb");
        assert_eq!(escape(b"\x1b[31mred"), "\\x1b[31mred");
        assert_eq!(escape(b"tab\there\r"), "tab\\there\\r");
        assert_eq!(escape(b"del\x7f"), "del\\x7f");
        assert_eq!(escape("c1\u{9b}".as_bytes()), "c1\\u{9b}");
        assert_eq!(escape(b"back\\slash"), "back\\\\slash");
    }

    #[test]
    fn plain_names_are_borrowed() {
        use super::escape_cow;
        use std::borrow::Cow;
        assert!(matches!(
            escape_cow(b"/usr/lib/x.so"),
            Cow::Borrowed("/usr/lib/x.so")
        ));
        assert!(matches!(escape_cow(b"a\\b"), Cow::Owned(s) if s == "a\\\\b"));
        assert!(matches!(escape_cow(b"a\nb"), Cow::Owned(s) if s == "a\\nb"));
        for name in [&b"caf\xc3\xa9"[..], b"\x1b[0m", b"\xff", b"plain"] {
            assert_eq!(escape_cow(name), escape(name));
        }
    }

    #[test]
    fn invalid_utf8_is_hex() {
        assert_eq!(escape(b"bad\xff\xfename"), "bad\\xff\\xfename");
    }

    #[test]
    fn escaped_output_has_no_control_characters() {
        let all: Vec<u8> = (0u8..=255).collect();
        assert!(!escape(&all).chars().any(|c| c.is_control()));
    }
}
