//! Base64 text as .NET's `Convert.FromBase64String` reads it: the host decodes queue messages
//! and output values with it, and so must everything here that stands in for the host or
//! accepts what the host accepts.
//!
//! .NET skips the whitespace characters space, tab, CR and LF anywhere in the input (MIME-style
//! line breaks every 76 characters are common), then requires canonical padded base64.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::Engine as _;

/// `Convert.FromBase64String`: standard alphabet, padding required, whitespace ignored.
pub fn decode_dotnet(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(strip_whitespace(text)).ok()
}

/// What the handler accepts as a base64 message: .NET's reading, or the URL-safe alphabet
/// (some producers use it), whitespace ignored in both.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let compact = strip_whitespace(text);
    STANDARD
        .decode(&compact)
        .or_else(|_| URL_SAFE.decode(&compact))
        .ok()
}

pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn strip_whitespace(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_line_breaks_and_spaces_are_ignored() {
        let text = "x".repeat(200);
        let encoded = encode(text.as_bytes());
        let mime: String = encoded
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert!(mime.contains("\r\n"));
        assert_eq!(decode_dotnet(&mime).unwrap(), text.as_bytes());
        assert_eq!(decode_dotnet(" aGVs\tbG8= \n").unwrap(), b"hello");
    }

    #[test]
    fn dotnet_rules_for_what_is_not_base64() {
        for bad in ["aGVsbG8", "not base64!", "aGVsbG8=x", "a===", "-_-_"] {
            assert_eq!(decode_dotnet(bad), None, "{bad}");
        }
        // An empty string is valid base64 for .NET (zero bytes).
        assert_eq!(decode_dotnet("").unwrap(), Vec::<u8>::new());
        // Any four letters are base64: the reason never to send a bare word as an output.
        assert!(decode_dotnet("abcd").is_some());
    }

    #[test]
    fn url_safe_is_accepted_only_by_the_lenient_reader() {
        let bytes = [0xfb, 0xff, 0xfe];
        let url_safe = URL_SAFE.encode(bytes);
        assert!(url_safe.contains('-') || url_safe.contains('_'));
        assert_eq!(decode_dotnet(&url_safe), None);
        assert_eq!(decode_lenient(&url_safe).unwrap(), bytes);
    }
}
