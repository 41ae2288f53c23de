//! An error with its causes, for a log line, after zero2prod's `error_chain_fmt`
//! (LukeMathWalker/zero-to-production, `src/routes/subscriptions.rs`), but on one line:
//! `error: cause: cause…`. The Functions host turns each stdout line into a log entry of its
//! own, so zero2prod's `Caused by:` lines would reach Application Insights as separate,
//! unrelated entries. Every cause is redacted: our own errors redact in `Display`, but a cause
//! from a dependency (an SDK error with a request URL) does not. reqwest's top-level message
//! ("error sending request") hides the cause (refused, reset), so the chain is what says why.

use std::fmt;

use crate::redact::redact;

/// Writes `e` and its chain of sources, `: `-separated, redacted.
pub fn error_chain_fmt(e: &dyn std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str(&one_line(e))
}

/// `tracing::error!("{}", Chain(&e))`: [`error_chain_fmt`] as a `Display`.
pub struct Chain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self.0, f)
    }
}

/// The chain as a `String`: for a log line, or for a reason kept inside another error (a
/// transient Training API or ARM failure) where the source itself is not kept.
pub fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut current = e.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    redact(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("list backups failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error(
        "GET https://a.blob.core.windows.net/c?sv=2024-01-01&sig=FAKE%2Bnot%2Freal answered 500"
    )]
    struct Inner;

    #[test]
    fn every_cause_is_on_the_one_line_and_redacted() {
        let text = Chain(&Outer(Inner)).to_string();
        assert!(text.starts_with("list backups failed: GET "), "{text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("answered 500"), "{text}");
        assert!(!text.contains("FAKE"), "{text}");
    }

    #[test]
    fn one_line_joins_the_causes_and_redacts() {
        let text = one_line(&Outer(Inner));
        assert!(text.starts_with("list backups failed: GET "), "{text}");
        assert!(!text.contains('\n') && !text.contains("FAKE"), "{text}");
    }
}
