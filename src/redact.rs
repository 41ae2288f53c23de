//! Secret scrubbing for everything that leaves the process as text (log lines, error reasons,
//! rejected records and the blobs that keep large ones).
//!
//! SAS signatures and account keys can reach a string through a URL (a `modelUri`, a copy
//! source) or an SDK error. Rather than trusting every call site, the log writer runs each line
//! through [`redact`], and so does every reason and every kept message the handler returns.

use std::io::{self, Write};

/// Keys whose value is a secret; `sig%3d` is a SAS inside another URL's query.
const SECRET_KEYS: [&str; 4] = ["sig=", "sig%3d", "accountkey=", "sharedaccesssignature="];
const REDACTED: &str = "REDACTED";

/// Replaces the value after `sig=`, `AccountKey=` and `SharedAccessSignature=` (any case; `sig`
/// also percent-encoded) up to the next delimiter.
pub fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let found = SECRET_KEYS
            .iter()
            .filter_map(|k| lower[i..].find(k).map(|at| (i + at, *k)))
            .min();
        let Some((at, key)) = found else {
            out.push_str(&text[i..]);
            break;
        };
        let is_sig = key.starts_with("sig");
        // `sig=` must start a parameter, not end a longer name such as `xsig=`.
        let value_start = at + key.len();
        let starts_param = at == 0
            || !text.as_bytes()[at - 1].is_ascii_alphanumeric()
            || !is_sig
            || lower[..at].ends_with("%26")
            || lower[..at].ends_with("%3f");
        out.push_str(&text[i..value_start]);
        // A connection-string value runs to `;` and may itself hold `&` (a whole SAS); a
        // percent-encoded signature runs to `%26`, an encoded `&`.
        let value = &text[value_start..];
        let lower_value = &lower[value_start..];
        let mut value_end = value
            .find(|c: char| {
                matches!(c, ';' | '"' | '\'' | '<' | '>' | ',' | ')')
                    || (is_sig && c == '&')
                    || c.is_whitespace()
            })
            .map_or(text.len(), |n| value_start + n);
        if key == "sig%3d" {
            if let Some(n) = lower_value.find("%26") {
                value_end = value_end.min(value_start + n);
            }
        }
        if starts_param && value_end > value_start {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text[value_start..value_end]);
        }
        i = value_end;
    }
    out
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

/// A `tracing_subscriber` writer that redacts each write before it reaches stdout.
#[derive(Clone, Copy, Default)]
pub struct RedactingStdout;

impl Write for RedactingStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        io::stdout().lock().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStdout {
    type Writer = RedactingStdout;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Installs the process-wide subscriber: stdout, redacted, filtered by `RUST_LOG` (a level, or
/// `target=level` pairs such as `info,hyper=warn`), `info` by default.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(RedactingStdout)
        .with_ansi(false)
        .with_target(false);
    let _ = tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .try_init();
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
