//! The packaged `handler` (build/package/handler, from `make package`) is the binary the
//! Functions host starts: it starts with what the host gives it (FUNCTIONS_CUSTOMHANDLER_PORT and
//! the app settings, here pointing at a private Azurite) and answers the host's `GET /` probe
//! with 200. Run by `make package-check` after `make package`; ignored by a plain `cargo test`,
//! which has no package to test. The zip, the modes and the static ELF: tests/deploy.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use customvision_events::devhost::azurite::{die_with_parent, free_ports, Azurite};
use customvision_events::devhost::probe::{wait_for, ProbeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
#[ignore = "needs `make package`; run by `make package-check`"]
async fn the_packaged_handler_starts_and_answers_the_hosts_probe() {
    let folder = root().join("build/package");
    let handler = folder.join("handler");
    assert!(
        handler.is_file(),
        "{} is missing: run `make package`",
        handler.display()
    );
    let azurite = Azurite::start(&root()).expect("Azurite starts (run `npm ci` first)");
    let [port] = free_ports::<1>().unwrap();
    // As the host runs it: from the app root, with the app settings as its only environment.
    let mut command = Command::new(&handler);
    command
        .current_dir(&folder)
        .env_clear()
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("CV_STORAGE", azurite.connection_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut command);
    let child = std::sync::Mutex::new(command.spawn().expect("the packaged handler starts"));

    // The host's probe, on the wire: poll until the handler answers (or exits), keep the answer.
    let answer = wait_for(
        "GET / on the packaged handler",
        Duration::from_secs(60),
        || {
            let exited = child.lock().unwrap().try_wait();
            async move {
                match exited? {
                    Some(status) => {
                        Err(std::io::Error::other(format!("the handler exited: {status}")).into())
                    }
                    None => get_root(port).await,
                }
            }
        },
    )
    .await;
    let mut child = child.into_inner().unwrap();
    let _ = child.kill();
    let output = child.wait_with_output().expect("the handler's output");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = answer.unwrap_or_else(|e| panic!("{e}: {log}"));
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "GET / answered: {answer}\n{log}"
    );
}

/// `GET /` over a fresh connection: `None` while nothing listens, else the whole answer.
async fn get_root(port: u16) -> Result<Option<String>, ProbeError> {
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Ok(None);
    };
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    Ok(Some(String::from_utf8_lossy(&answer).into_owned()))
}
