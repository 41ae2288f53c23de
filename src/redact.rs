//! Secret scrubbing for everything that leaves the process as text (log lines, error reasons).
//!
//! SAS signatures and account keys can reach a string through a URL (a `modelUri`, a copy
//! source) or an SDK error. Rather than trusting every call site, the log writer runs each line
//! through [`redact`], and so does every reason the handler returns.

use std::io::{self, Write};

const SECRET_KEYS: [&str; 3] = ["sig=", "accountkey=", "sharedaccesssignature="];
const REDACTED: &str = "REDACTED";

/// Replaces the value after `sig=`, `AccountKey=` and `SharedAccessSignature=` (any case) up to
/// the next delimiter.
pub fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let found = SECRET_KEYS
            .iter()
            .filter_map(|k| lower[i..].find(k).map(|at| (i + at, k.len())))
            .min();
        let Some((at, key_len)) = found else {
            out.push_str(&text[i..]);
            break;
        };
        // `sig=` must start a parameter, not end a longer name such as `xsig=`.
        let value_start = at + key_len;
        let starts_param =
            at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric() || key_len != "sig=".len();
        out.push_str(&text[i..value_start]);
        // A connection-string value runs to `;` and may itself hold `&` (a whole SAS).
        let is_sig = key_len == "sig=".len();
        let value_end = text[value_start..]
            .find(|c: char| {
                matches!(c, ';' | '"' | '\'' | '<' | '>' | ',' | ')')
                    || (is_sig && c == '&')
                    || c.is_whitespace()
            })
            .map_or(text.len(), |n| value_start + n);
        if starts_param && value_end > value_start {
            out.push_str(REDACTED);
        } else {
            out.push_str(&text[value_start..value_end]);
        }
        i = value_end;
    }
    out
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

/// Installs the process-wide subscriber: stdout, redacted, `RUST_LOG` or `info`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStdout)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sas_signatures_are_redacted() {
        let url = "https://a.blob.core.windows.net/c/b%20-%20x.ONNX?sv=2021-08-06&se=2026&sp=r&sig=abc%2Bdef%3D&x=1";
        let r = redact(&format!("copy from {url} failed"));
        assert!(!r.contains("abc%2Bdef"), "{r}");
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
}
