//! Base64 as .NET's `Convert.FromBase64String` reads it. Property: the decoder agrees with a
//! straightforward one written from the rules (strip space, tab, CR, LF; groups of four;
//! at most two `=`, only at the end; unused low bits ignored, as .NET 8 does), the lenient
//! reader accepts everything .NET does with the same bytes, and encoding round-trips.
#![no_main]

use customvision_events::base64text::{decode_dotnet, decode_lenient, encode};
use libfuzzer_sys::fuzz_target;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn straightforward(text: &str, alphabet: &[u8; 64]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .collect();
    if !compact.len().is_multiple_of(4) {
        return None;
    }
    let padding = compact.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let (mut bits, mut count, mut out) = (0u32, 0u32, Vec::new());
    for &c in &compact[..compact.len() - padding] {
        let value = alphabet.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    assert_eq!(decode_dotnet(&encode(data)).as_deref(), Some(data));
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dotnet = decode_dotnet(text);
    assert_eq!(dotnet, straightforward(text, STANDARD), "{text:?}");
    let lenient = decode_lenient(text);
    match (&dotnet, &lenient) {
        (Some(d), l) => assert_eq!(Some(d), l.as_ref(), "{text:?}"),
        (None, Some(l)) => {
            assert_eq!(
                Some(l),
                straightforward(text, URL_SAFE).as_ref(),
                "{text:?}"
            )
        }
        (None, None) => assert_eq!(straightforward(text, URL_SAFE), None, "{text:?}"),
    }
});
