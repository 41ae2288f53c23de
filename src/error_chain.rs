//! An error with its causes, for a log line: the error, then one `Caused by:` line per
//! `source()`, as zero2prod's `error_chain_fmt` writes it (LukeMathWalker/zero-to-production,
//! `src/routes/subscriptions.rs`). Every cause is redacted: our own errors redact in
//! `Display`, but a cause from a dependency (an SDK error with a request URL) does not.

use std::fmt;

use crate::redact::redact;

/// Writes `e` and its chain of sources, each redacted.
pub fn error_chain_fmt(e: &dyn std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", redact(&e.to_string()))?;
    let mut current = e.source();
    while let Some(cause) = current {
        writeln!(f, "Caused by:\n\t{}", redact(&cause.to_string()))?;
        current = cause.source();
    }
    Ok(())
}

/// `tracing::error!("{}", Chain(&e))`: [`error_chain_fmt`] as a `Display`.
pub struct Chain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        error_chain_fmt(self.0, f)
    }
}

/// The same chain on one line, `error: cause: cause…`, redacted: for a reason kept inside
/// another error (a transient Training API or ARM failure), where the source is not kept;
/// reqwest's top-level message ("error sending request") hides the cause (refused, reset).
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
    fn every_cause_is_a_line_of_its_own_and_redacted() {
        let text = Chain(&Outer(Inner)).to_string();
        assert!(
            text.starts_with("list backups failed\nCaused by:\n\tGET "),
            "{text}"
        );
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
