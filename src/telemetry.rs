//! The process's tracing set-up: one subscriber, writing to stdout, every line run through
//! [`redact`] first (the scrubbing itself lives in [`crate::redact`]).

use std::io::{self, Write};

use crate::redact::redact;

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
