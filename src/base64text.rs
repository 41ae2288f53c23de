//! Base64 text as .NET's `Convert.FromBase64String` reads it: the host decodes queue messages
//! and output values with it, and so must everything here that stands in for the host or
//! accepts what the host accepts.
//!
//! .NET skips the whitespace characters space, tab, CR and LF anywhere in the input (MIME-style
//! line breaks every 76 characters are common), then requires padded base64. It ignores the
//! unused low bits of the last character (`QR==` reads as `QQ==`): .NET 8, which the Functions
//! host 4.x runs on, does not check them (dotnet/runtime issue 105264; the check came later,
//! as a breaking change, dotnet/runtime issue 133495).

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine as _;

const READ: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true);
const DOTNET: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, READ);
const DOTNET_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, READ);

/// `Convert.FromBase64String`: standard alphabet, padding required, whitespace ignored.
pub fn decode_dotnet(text: &str) -> Option<Vec<u8>> {
    DOTNET.decode(strip_whitespace(text)).ok()
}

/// What the handler accepts as a base64 message: .NET's reading, or the URL-safe alphabet
/// (some producers use it), whitespace ignored in both.
pub fn decode_lenient(text: &str) -> Option<Vec<u8>> {
    let compact = strip_whitespace(text);
    DOTNET
        .decode(&compact)
        .or_else(|_| DOTNET_URL_SAFE.decode(&compact))
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

    /// Found by the `base64text` fuzz target: a message the host decodes was poisoned by the
    /// dev host as "not base64".
    #[test]
    fn unused_low_bits_are_ignored_as_dotnet_8_does() {
        for text in ["QQ==", "QR==", "Qf==", "QUJ=", "QUL="] {
            let canonical = if text.ends_with("==") { "QQ==" } else { "QUI=" };
            assert_eq!(decode_dotnet(text), decode_dotnet(canonical), "{text}");
            assert_eq!(decode_lenient(text), decode_dotnet(canonical), "{text}");
        }
        assert_eq!(decode_dotnet("QR==").unwrap(), b"A");
        assert_eq!(decode_lenient("_-8=").unwrap(), [0xff, 0xef]);
    }

    #[test]
    fn url_safe_is_accepted_only_by_the_lenient_reader() {
        let bytes = [0xfb, 0xff, 0xfe];
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(bytes);
        assert!(url_safe.contains('-') || url_safe.contains('_'));
        assert_eq!(decode_dotnet(&url_safe), None);
        assert_eq!(decode_lenient(&url_safe).unwrap(), bytes);
    }
}
