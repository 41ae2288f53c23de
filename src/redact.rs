//! Secret scrubbing for everything that leaves the process as text (log lines, error reasons,
//! rejected records and the blobs that keep large ones).
//!
//! SAS signatures, account keys and API keys can reach a string through a URL (a `modelUri`, a
//! copy source), a header dump or an SDK error, and in any encoding on the way: a URL inside
//! another URL's query (`sig%3D`, `sig%253D`), JSON inside JSON (`sig\u003d`, `{\"sig\":…}`),
//! an escaped name (`%73ig=`). Rather than trusting every call site, the log writer
//! ([`crate::telemetry`]) runs each line through [`redact`], and so does every reason and every
//! kept message the handler returns.
//!
//! How: the text is decoded into a *view* (percent escapes and JSON escapes undone, repeatedly,
//! until nothing changes), and every byte of the view remembers where it came from in the text.
//! Names are matched in the view, without regard to case; each secret value found there is
//! replaced in the original text, over the bytes its view came from, whatever their encoding.
//! A text without escapes is its own view, and costs one scan.

const REDACTED: &str = "REDACTED";

/// Percent and JSON escapes nest: one URL in another's query, that in a JSON string, that in
/// another JSON string. Past this depth a text is not something a log line holds.
const MAX_DECODE_PASSES: usize = 8;

/// How a name's value is found and where it ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `name=value`, `name: value`, `"name":"value"`; the value ends at `&` too.
    Param,
    /// A connection-string value: runs to `;`, `&` included (a whole SAS).
    ConnectionValue,
    /// `Bearer <token>`: the token after white space.
    Bearer,
    /// A JSON Web Token anywhere (`eyJ….….…`): all of it.
    Jwt,
    /// A secret written with its prefix (`whsec_…`): what follows the prefix.
    Prefix,
}

struct Name {
    /// Lower case: matched without regard to case (except `eyJ`, matched as written).
    text: &'static [u8],
    kind: Kind,
    /// Must not follow a letter or digit: `sig` is too short to trust inside a longer name
    /// (`xsig=`), and prose runs into `bearer`; a `…key` name is a secret at the end of any.
    boundary: bool,
}

const NAMES: &[Name] = &[
    // SAS signature in a URL's query, and in a JSON object.
    name(b"sig", Kind::Param, true),
    // Storage, Service Bus and Event Hubs connection strings; a whole SAS as a value, and
    // the `SharedAccessSignature sr=…&sig=…` authorization header.
    name(b"accountkey", Kind::ConnectionValue, false),
    name(b"sharedaccesskey", Kind::ConnectionValue, false),
    name(b"sharedaccesssignature", Kind::ConnectionValue, false),
    // Custom Vision's Training and Prediction keys, Cognitive Services' header, Event Grid's.
    name(b"training-key", Kind::Param, false),
    name(b"prediction-key", Kind::Param, false),
    name(b"ocp-apim-subscription-key", Kind::Param, false),
    name(b"aeg-sas-key", Kind::Param, false),
    name(b"aeg-sas-token", Kind::Param, false),
    name(b"client_secret", Kind::Param, false),
    name(b"bearer", Kind::Bearer, true),
    name(b"eyJ", Kind::Jwt, true),
    // Webhook signing secrets (Svix, Stripe).
    name(b"whsec_", Kind::Prefix, true),
];

const fn name(text: &'static [u8], kind: Kind, boundary: bool) -> Name {
    Name {
        text,
        kind,
        boundary,
    }
}

/// Which names a byte may start (`FIRST`) or follow the first byte of (`SECOND`), as bit masks
/// over `NAMES`, either case: most pairs of a line start no name, and cost two loads.
const FIRST: [u16; 256] = name_bytes(0);
const SECOND: [u16; 256] = name_bytes(1);

const fn name_bytes(at: usize) -> [u16; 256] {
    assert!(NAMES.len() <= 16);
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < NAMES.len() {
        let b = NAMES[i].text[at];
        table[b.to_ascii_lowercase() as usize] |= 1 << i;
        table[b.to_ascii_uppercase() as usize] |= 1 << i;
        i += 1;
    }
    table
}

/// Replaces each secret value (see `NAMES`) with `REDACTED`, in whichever encoding it was
/// written; everything else is kept byte for byte.
pub fn redact(text: &str) -> String {
    let view = View::decode(text);
    let bytes = &view.bytes[..];
    // Value spans in the view. The scan goes on inside a value: a value that runs on (a
    // connection-string value to its `;`) must not hide a name whose own value runs past it.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for (i, pair) in bytes.windows(2).enumerate() {
        let mut candidates = FIRST[usize::from(pair[0])] & SECOND[usize::from(pair[1])];
        while candidates != 0 {
            let name = &NAMES[candidates.trailing_zeros() as usize];
            candidates &= candidates - 1;
            if let Some(span) = secret_at(bytes, i, name) {
                spans.push(span);
                break;
            }
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((start, mut end)) = spans.next() {
        while let Some(&(_, next_end)) = spans.peek().filter(|&&(s, _)| s <= end) {
            end = end.max(next_end);
            spans.next();
        }
        let (from, to) = (view.start(start), view.end(end - 1));
        out.push_str(&text[copied..from]);
        out.push_str(REDACTED);
        copied = to;
    }
    out.push_str(&text[copied..]);
    out
}

/// The value span `[start, end)` in the view when `name` is written at `at` with a non-empty
/// value.
fn secret_at(bytes: &[u8], at: usize, name: &Name) -> Option<(usize, usize)> {
    let end_of_name = at + name.text.len();
    let written = bytes.get(at..end_of_name)?;
    let matches = if name.kind == Kind::Jwt {
        written == name.text
    } else {
        written.eq_ignore_ascii_case(name.text)
    };
    if !matches || (name.boundary && at > 0 && bytes[at - 1].is_ascii_alphanumeric()) {
        return None;
    }
    let start = match name.kind {
        Kind::Param | Kind::ConnectionValue => after_separator(bytes, end_of_name)?,
        Kind::Bearer => {
            let start = skip(bytes, end_of_name, |b| b == b' ' || b == b'\t');
            (start > end_of_name).then_some(start)?
        }
        Kind::Jwt => at,
        Kind::Prefix => end_of_name,
    };
    let end = skip(bytes, start, |b| !ends_value(b, name.kind));
    if end == start {
        return None;
    }
    // A JWT has three parts; base64 of JSON (a kept message) starts `eyJ` too, with no dot.
    if name.kind == Kind::Jwt && bytes[start..end].iter().filter(|&&b| b == b'.').count() < 2 {
        return None;
    }
    Some((start, end))
}

/// Past `"`, spaces, `=` or `:`, spaces and an opening quote: `sig=`, `"sig": "`,
/// `Training-Key: `. None when no `=` or `:` follows the name.
fn after_separator(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    i = skip(bytes, i, |b| b == b' ' || b == b'\t');
    if !matches!(bytes.get(i), Some(b'=' | b':')) {
        return None;
    }
    i = skip(bytes, i + 1, |b| b == b' ' || b == b'\t');
    if matches!(bytes.get(i), Some(b'"' | b'\'')) {
        i += 1;
    }
    Some(i)
}

fn skip(bytes: &[u8], from: usize, while_: impl Fn(u8) -> bool) -> usize {
    bytes[from.min(bytes.len())..]
        .iter()
        .position(|&b| !while_(b))
        .map_or(bytes.len(), |n| from + n)
}

/// Where a value ends: the delimiters of URLs, connection strings, JSON, XML and prose. `=`,
/// `+` and `/` are base64 and stay inside; `&` ends all but a connection-string value.
fn ends_value(b: u8, kind: Kind) -> bool {
    matches!(
        b,
        b';' | b'"' | b'\'' | b'<' | b'>' | b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}'
    ) || b.is_ascii_whitespace()
        || b.is_ascii_control()
        || (b == b'&' && kind != Kind::ConnectionValue)
}

/// The text with its escapes undone, each byte knowing the span of the text it came from.
/// Only ASCII is decoded as itself: a byte from a non-ASCII escape is 0x80, which no name or
/// delimiter holds.
struct View<'a> {
    text: &'a str,
    bytes: std::borrow::Cow<'a, [u8]>,
    /// Where each view byte starts in the text; `None` when the view is the text.
    starts: Option<Vec<usize>>,
}

impl<'a> View<'a> {
    fn decode(text: &'a str) -> Self {
        let Some((mut bytes, mut starts)) = decode_pass(text.as_bytes(), None) else {
            return Self {
                text,
                bytes: text.as_bytes().into(),
                starts: None,
            };
        };
        for _ in 1..MAX_DECODE_PASSES {
            match decode_pass(&bytes, Some(&starts)) {
                Some((b, s)) => (bytes, starts) = (b, s),
                None => break,
            }
        }
        Self {
            text,
            bytes: bytes.into(),
            starts: Some(starts),
        }
    }

    fn start(&self, i: usize) -> usize {
        self.starts.as_ref().map_or(i, |s| s[i])
    }

    /// Where view byte `i` ends in the text: the next one's start.
    fn end(&self, i: usize) -> usize {
        match &self.starts {
            None => i + 1,
            Some(s) => s.get(i + 1).copied().unwrap_or(self.text.len()),
        }
    }
}

/// One pass of `%XX`, `\uXXXX` and `\"`-style escapes over `bytes`, whose text spans start
/// at `starts` (the identity when None); None, without allocating, when there is no escape.
fn decode_pass(bytes: &[u8], starts: Option<&[usize]>) -> Option<(Vec<u8>, Vec<usize>)> {
    let first = (0..bytes.len()).find(|&i| escape_at(bytes, i).is_some())?;
    let start_of = |i: usize| starts.map_or(i, |s| s[i]);
    let mut out = Vec::with_capacity(bytes.len());
    let mut out_starts = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    out_starts.extend((0..first).map(start_of));
    let mut i = first;
    while i < bytes.len() {
        let (byte, len) = escape_at(bytes, i).unwrap_or((bytes[i], 1));
        out.push(byte);
        out_starts.push(start_of(i));
        i += len;
    }
    Some((out, out_starts))
}

/// The byte an escape at `i` stands for, and the escape's length.
fn escape_at(bytes: &[u8], i: usize) -> Option<(u8, usize)> {
    match bytes[i] {
        b'%' => hex(bytes.get(i + 1..i + 3)).map(|v| (ascii_or_marker(v), 3)),
        b'\\' => match bytes.get(i + 1)? {
            b'u' => hex(bytes.get(i + 2..i + 6)).map(|v| (ascii_or_marker(v), 6)),
            &c @ (b'\\' | b'"' | b'/' | b'\'') => Some((c, 2)),
            b'n' => Some((b'\n', 2)),
            b'r' => Some((b'\r', 2)),
            b't' => Some((b'\t', 2)),
            b'b' => Some((0x08, 2)),
            b'f' => Some((0x0c, 2)),
            _ => None,
        },
        _ => None,
    }
}

fn hex(digits: Option<&[u8]>) -> Option<u32> {
    digits?.iter().try_fold(0u32, |acc, &d| {
        let v = (d as char).to_digit(16)?;
        Some(acc * 16 + v)
    })
}

fn ascii_or_marker(v: u32) -> u8 {
    u8::try_from(v).ok().filter(u8::is_ascii).unwrap_or(0x80)
}

/// [`redact`] for a kept message: a base64 message hides its secrets from a text scan, so a
/// base64 text whose decoded form holds one is kept as base64 of the redacted form.
pub fn redact_message(text: &str) -> String {
    let plain = redact(text);
    if plain != text {
        return plain;
    }
    let decoded = crate::base64text::decode_lenient(text.trim())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded {
        Some(decoded) => {
            let scrubbed = redact(&decoded);
            if scrubbed == decoded {
                plain
            } else {
                crate::base64text::encode(scrubbed.as_bytes())
            }
        }
        None => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_signatures_are_redacted() {
        let url = "https://a.blob.core.windows.net/c/b%20-%20x.ONNX?sv=2021-08-06&se=2026&sp=r&sig=FAKE%2Bnot%2Freal&x=1";
        let r = redact(&format!("copy from {url} failed"));
        assert!(!r.contains("FAKE%2Bnot"), "{r}");
        assert!(r.contains("sig=REDACTED&x=1"), "{r}");
        assert!(
            r.contains("sv=2021-08-06"),
            "non-secret parameters stay: {r}"
        );
    }

    #[test]
    fn keys_in_connection_strings_are_redacted() {
        let cs =
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=Zm9vYmFy+/==;BlobEndpoint=x";
        assert_eq!(
            redact(cs),
            "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=REDACTED;BlobEndpoint=x"
        );
        assert_eq!(
            redact("SharedAccessSignature=sv=1&sig=zzz;QueueEndpoint=q"),
            "SharedAccessSignature=REDACTED;QueueEndpoint=q"
        );
        assert_eq!(
            redact("Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccessKey=Zm9v+/=;EntityPath=q"),
            "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=r;SharedAccessKey=REDACTED;EntityPath=q"
        );
    }

    #[test]
    fn case_and_position_variants() {
        assert_eq!(redact("SIG=secret"), "SIG=REDACTED");
        assert_eq!(redact("\"sig=secret\""), "\"sig=REDACTED\"");
        assert_eq!(redact("xsig=keep"), "xsig=keep");
        assert_eq!(redact("nothing here"), "nothing here");
        assert_eq!(redact("sig="), "sig=");
        assert_eq!(redact("a sig=1 b sig=2"), "a sig=REDACTED b sig=REDACTED");
        assert_eq!(redact("ünïcode sig=ß€ done"), "ünïcode sig=REDACTED done");
    }

    #[test]
    fn percent_encoded_signatures_inside_another_url() {
        let nested = "https://x/y?next=https%3A%2F%2Fa%2Fb%3Fsv%3D1%26sig%3DSECRET%2Bx%26se%3D2";
        let r = redact(nested);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(r.ends_with("sig%3DREDACTED%26se%3D2"), "{r}");
    }

    // The forms the security review found passing unchanged (issue 15, trust item 3). Each is
    // replaced where it is written, in its own encoding, and nothing else changes.

    #[test]
    fn a_double_encoded_signature() {
        let text = "https://x/y?next=https%253A%252F%252Fa%252Fb%253Fsv%253D1%2526sig%253DSECRETx%25252By%2526se%253D2";
        assert_eq!(
            redact(text),
            "https://x/y?next=https%253A%252F%252Fa%252Fb%253Fsv%253D1%2526sig%253DREDACTED%2526se%253D2"
        );
    }

    #[test]
    fn a_signature_behind_json_unicode_escapes() {
        let text = r#"{"modelUri":"https://a/b?sv=1\u0026sig\u003dSECRETx\u002By\u0026se=2"}"#;
        assert_eq!(
            redact(text),
            r#"{"modelUri":"https://a/b?sv=1\u0026sig\u003dREDACTED\u0026se=2"}"#
        );
    }

    #[test]
    fn a_signature_whose_name_is_escaped() {
        assert_eq!(
            redact("https://a/b?sv=1&%73ig=SECRET"),
            "https://a/b?sv=1&%73ig=REDACTED"
        );
        assert_eq!(redact("?%53%49%47=SECRET&x=1"), "?%53%49%47=REDACTED&x=1");
        assert_eq!(redact(r"?\u0073ig=SECRET"), r"?\u0073ig=REDACTED");
    }

    #[test]
    fn an_encoded_account_key() {
        assert_eq!(
            redact("cs=AccountName%3Da%3BAccountKey%3DSECRET%2B%2F%3D%3D%3BBlobEndpoint%3Dx"),
            "cs=AccountName%3Da%3BAccountKey%3DREDACTED%3BBlobEndpoint%3Dx"
        );
    }

    #[test]
    fn a_signature_in_json_objects_plain_and_escaped() {
        assert_eq!(
            redact(r#"{"sig":"SECRET","sv":"1"}"#),
            r#"{"sig":"REDACTED","sv":"1"}"#
        );
        assert_eq!(redact(r#"{"SIG" : "SECRET"}"#), r#"{"SIG" : "REDACTED"}"#);
        assert_eq!(
            redact(r#"{"m":"{\"sig\":\"SECRET\",\"a\":1}"}"#),
            r#"{"m":"{\"sig\":\"REDACTED\",\"a\":1}"}"#
        );
    }

    #[test]
    fn bearer_tokens_and_bare_jwts() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_x";
        assert_eq!(
            redact(&format!("Authorization: Bearer {jwt}\r\nHost: x")),
            "Authorization: Bearer REDACTED\r\nHost: x"
        );
        assert_eq!(
            redact(&format!("{{\"authorization\":\"bearer {jwt}\"}}")),
            "{\"authorization\":\"bearer REDACTED\"}"
        );
        assert_eq!(redact(&format!("token {jwt}.")), "token REDACTED");
        // Base64 of JSON starts `eyJ` too: a kept message is not a token.
        let b64 = crate::base64text::encode(br#"{"version":"1.0","type":"Export"}"#);
        assert!(b64.starts_with("eyJ"));
        assert_eq!(redact(&b64), b64);
        assert_eq!(redact("no bearer"), "no bearer");
    }

    #[test]
    fn api_keys_in_headers_and_webhook_secrets() {
        assert_eq!(
            redact("Training-Key: SECRET\r\n"),
            "Training-Key: REDACTED\r\n"
        );
        assert_eq!(
            redact(r#"{"ocp-apim-subscription-key": "SECRET", "accept": "*/*"}"#),
            r#"{"ocp-apim-subscription-key": "REDACTED", "accept": "*/*"}"#
        );
        assert_eq!(
            redact("Prediction-Key=SECRET&x"),
            "Prediction-Key=REDACTED&x"
        );
        assert_eq!(redact("aeg-sas-key: SECRET"), "aeg-sas-key: REDACTED");
        // A connection-string value runs to `;`, over the name of a header: both values go.
        assert_eq!(
            redact("AccountKey=&Training-Key: SECRET"),
            "AccountKey=REDACTED REDACTED"
        );
        assert_eq!(
            redact("secret whsec_SECRET+/= set"),
            "secret whsec_REDACTED set"
        );
    }

    #[test]
    fn words_that_only_look_like_names_stay() {
        for text in [
            "the signature did not match",
            "sig is short for signature",
            "AccountKey",
            "100%3 of keys, a \\ path C:\\x\\sig",
            "100% done \\u00",
            "%%%\\\\\\",
        ] {
            assert_eq!(redact(text), text);
        }
    }

    #[test]
    fn kept_messages_are_redacted_in_plain_and_in_base64() {
        let json = r#"{"modelUri":"https://a.blob.core.windows.net/c/b?sv=1&sig=SECRET"}"#;
        assert_eq!(
            redact_message(json),
            r#"{"modelUri":"https://a.blob.core.windows.net/c/b?sv=1&sig=REDACTED"}"#
        );
        let b64 = crate::base64text::encode(json.as_bytes());
        let kept = redact_message(&b64);
        let decoded = String::from_utf8(crate::base64text::decode_dotnet(&kept).unwrap()).unwrap();
        assert_eq!(decoded, redact(json));
        // Nothing secret: every byte is kept as it came.
        assert_eq!(redact_message("  plain words \n"), "  plain words \n");
        let clean = crate::base64text::encode(b"{\"a\":1}");
        assert_eq!(redact_message(&clean), clean);
    }
}
