//! The dashboard and a report in a real browser: headless Chromium (Debian's `chromium`;
//! `.ci/run` installs it, `CHROMIUM` names another) driven over the DevTools protocol on a
//! pipe (`--remote-debugging-pipe`: fd 3 carries commands in, fd 4 answers and events out,
//! each message JSON ended by a NUL, as Puppeteer's pipe transport speaks it), so no
//! WebSocket library is needed. A page passes with no console error, no uncaught exception
//! and no error in the browser's log (a resource that fails to load is one), and the chart
//! has one point per iteration, each drawn inside the chart.
//!
//! Protocol: https://chromedevtools.github.io/devtools-protocol/ (Target.attachToTarget with
//! `flatten`, Runtime.exceptionThrown, Runtime.consoleAPICalled, Log.entryAdded).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use customvision_events::automation::dashboard::{page, summarise};
use customvision_events::automation::html;
use customvision_events::automation::report::{
    Figures, IterationSummary, Miss, PublishLine, Report, TagFigures,
};
use customvision_events::model_store::{IndexEntry, ModelIndex};

const DEADLINE: Duration = Duration::from_secs(60);

fn chromium_binary() -> String {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return path;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return name.to_string();
        }
    }
    panic!("no Chromium: `apt-get install -y chromium` (.ci/run does), or set CHROMIUM=/path/to/chrome");
}

/// What a page did while it loaded, and the answer to the question asked of it.
#[derive(Debug)]
pub struct Loaded {
    /// Console errors, uncaught exceptions, error-level log entries.
    pub errors: Vec<String>,
    pub answer: Value,
}

pub struct Browser {
    child: Child,
    commands: File,
    events: Receiver<Value>,
    next_id: u64,
    _profile: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pipe() -> (RawFd, RawFd) {
    let mut fds = [0; 2];
    // O_CLOEXEC: only the two ends dup2'ed onto 3 and 4 reach the browser.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    pub fn start() -> Self {
        let profile =
            TempDir(std::env::temp_dir().join(format!("cv-chromium-{}", uuid::Uuid::new_v4())));
        std::fs::create_dir_all(&profile.0).unwrap();
        let (browser_reads, we_write) = pipe();
        let (we_read, browser_writes) = pipe();
        let mut command = Command::new(chromium_binary());
        command
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // Either end may already be 3 or 4: lift both above them first, then place
                // them (dup2 onto a new number also clears close-on-exec).
                let r = libc::fcntl(browser_reads, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(browser_writes, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("start chromium");
        unsafe {
            libc::close(browser_reads);
            libc::close(browser_writes);
        }
        let commands = unsafe { File::from_raw_fd(we_write) };
        let reader = unsafe { File::from_raw_fd(we_read) };
        let (tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(reader);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        message.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&message) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        Self {
            child,
            commands,
            events,
            next_id: 0,
            _profile: profile,
        }
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let mut message = json!({"id": self.next_id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        if let Err(e) = self.commands.write_all(&bytes) {
            if !std::thread::panicking() {
                panic!("write to chromium: {e}");
            }
        }
        self.next_id
    }

    /// The next message, or a panic at the deadline.
    fn next(&self, deadline: Instant) -> Value {
        match self
            .events
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(v) => v,
            Err(RecvTimeoutError::Timeout) => panic!("chromium did not answer within {DEADLINE:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("chromium closed the pipe"),
        }
    }

    /// Sends a command and waits for its result; events on the way go to `seen`.
    fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        seen: &mut Vec<Value>,
    ) -> Value {
        let id = self.send(session, method, params);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let message = self.next(deadline);
            if message["id"] == json!(id) {
                if let Some(error) = message.get("error") {
                    panic!("{method}: {error}");
                }
                return message["result"].clone();
            }
            seen.push(message);
        }
    }

    /// A new tab attached with `domains` enabled (at `width`×`height` when given), `file`
    /// loaded in it up to its load event; the session and every message seen on the way.
    fn open(
        &mut self,
        file: &Path,
        domains: &[&str],
        size: Option<(u32, u32)>,
    ) -> (String, Vec<Value>) {
        let mut seen = Vec::new();
        let target = self.call(
            None,
            "Target.createTarget",
            json!({"url": "about:blank"}),
            &mut seen,
        );
        let attached = self.call(
            None,
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
            &mut seen,
        );
        let session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_string();
        let s = Some(session.as_str());
        for domain in domains.iter().chain(&["Page.enable"]) {
            self.call(s, domain, json!({}), &mut seen);
        }
        if let Some((width, height)) = size {
            self.call(
                s,
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
                &mut seen,
            );
        }
        let url = url::Url::from_file_path(file).expect("absolute path");
        self.call(s, "Page.navigate", json!({"url": url.as_str()}), &mut seen);
        let deadline = Instant::now() + DEADLINE;
        while !seen
            .iter()
            .any(|m| m["method"] == "Page.loadEventFired" && m["sessionId"] == json!(session))
        {
            seen.push(self.next(deadline));
        }
        (session, seen)
    }

    /// Loads `file` in a new tab, waits for its load event, and evaluates `question` in it.
    pub fn load(&mut self, file: &Path, question: &str) -> Loaded {
        let (session, mut seen) = self.open(file, &["Runtime.enable", "Log.enable"], None);
        let answer = self.call(
            Some(&session),
            "Runtime.evaluate",
            json!({"expression": question, "returnByValue": true}),
            &mut seen,
        );
        let errors = seen
            .iter()
            .filter(|m| m["sessionId"] == json!(session))
            .filter_map(|m| {
                let p = &m["params"];
                match m["method"].as_str()? {
                    "Runtime.exceptionThrown" => {
                        Some(format!("exception: {}", p["exceptionDetails"]))
                    }
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error" | "assert" | "warning")) =>
                    {
                        Some(format!("console.{}: {}", p["type"], p["args"]))
                    }
                    "Log.entryAdded"
                        if matches!(p["entry"]["level"].as_str(), Some("error" | "warning")) =>
                    {
                        Some(format!(
                            "log {}: {} {}",
                            p["entry"]["level"], p["entry"]["text"], p["entry"]["url"]
                        ))
                    }
                    _ => None,
                }
            })
            .collect();
        Loaded {
            errors,
            answer: answer["result"]["value"].clone(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let mut seen = Vec::new();
        let _ = self.send(None, "Browser.close", json!({}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            if let Ok(m) = self.events.recv_timeout(Duration::from_millis(100)) {
                seen.push(m);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The question asked of a dashboard: its points, how many lie inside the chart, its rows.
const DASHBOARD_QUESTION: &str = r#"(() => {
  const svg = document.querySelector('svg.chart');
  const box = svg.getBoundingClientRect();
  const points = [...svg.querySelectorAll('g.point')];
  const inside = points.filter(g => [...g.querySelectorAll('circle')].every(c => {
    const r = c.getBoundingClientRect();
    return r.width > 0 && r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom;
  }));
  return { points: points.length, inside: inside.length,
           precision: svg.querySelectorAll('circle.precision').length,
           rows: document.querySelectorAll('tr.iteration').length,
           scripts: document.scripts.length };
})()"#;

use customvision_events::domain::examples::PROJECT as P;

fn iteration_id(n: usize) -> String {
    format!("{n:08x}-5f60-4172-8394-a5b6c7d8e9f0")
}

/// `n` iterations on a path of figures, the last refused by the gate, each exported to ONNX.
pub fn sample(n: usize) -> (Vec<Report>, ModelIndex) {
    let mut reports = Vec::new();
    let mut index = ModelIndex::empty(customvision_events::domain::ProjectId::parse(P).unwrap());
    for k in 0..n {
        let id = iteration_id(k + 1);
        let precision = 0.78 + 0.05 * k as f64 - if k + 1 == n && n > 1 { 0.15 } else { 0.0 };
        let recall = 0.74 + 0.04 * k as f64;
        let trained_at = format!("2026-11-{:02}T10:00:00Z", k + 1);
        let tag = |name: &str, p: f64, r: f64| TagFigures {
            id: format!("{name}-id"),
            name: name.into(),
            precision: p,
            recall: r,
            average_precision: Some((p + r) / 2.0),
        };
        let missed = customvision_events::automation::report::misses(
            &Figures {
                threshold: 0.5,
                overlap_threshold: None,
                precision,
                recall,
                average_precision: None,
                precision_std_deviation: 0.0,
                recall_std_deviation: 0.0,
                per_tag: vec![],
            },
            0.85,
            0.8,
        );
        reports.push(Report {
            project_id: P.into(),
            iteration_id: id.clone(),
            status: "TrainingCompleted".into(),
            generated_at: trained_at.clone(),
            iteration: Some(IterationSummary {
                name: format!("Iteration {}", k + 1),
                status: "Completed".into(),
                trained_at: Some(trained_at.clone()),
                created: None,
                domain_id: None,
                classification_type: Some("Multiclass".into()),
                training_type: Some("Regular".into()),
                exportable: true,
                exportable_to: vec!["ONNX".into()],
                publish_name: None,
            }),
            performance: Some(Figures {
                threshold: 0.5,
                overlap_threshold: None,
                precision,
                recall,
                average_precision: Some((precision + recall) / 2.0 + 0.02),
                precision_std_deviation: 0.01,
                recall_std_deviation: 0.01,
                per_tag: vec![
                    tag("scratch", precision, recall),
                    tag("dent & <chip>", precision - 0.05, recall - 0.1),
                ],
            }),
            previous: None,
            exports: vec![],
            publish: Some(PublishLine {
                name: "production".into(),
                outcome: if missed.is_empty() {
                    "published"
                } else {
                    "belowBar"
                }
                .into(),
                min_precision: 0.85,
                min_recall: 0.8,
                missed: missed.clone(),
                detail: None,
            }),
            notes: vec![],
        });
        let _: &Vec<Miss> = &missed;
        index.upsert(
            IndexEntry {
                iteration_id: id.clone(),
                platform: "ONNX".into(),
                path: format!("{P}/{id}/ONNX/{P} - {id}.ONNX"),
                extension: "onnx".into(),
                size: Some(1),
                content_md5: None,
                time: trained_at,
                ordered_by: "trainedAt".into(),
                source: "customvision-backups/b".into(),
            },
            true,
        );
    }
    (reports, index)
}

fn write_page(dir: &Path, name: &str, html: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, html).unwrap();
    path
}

fn scratch_dir() -> TempDir {
    TempDir(std::env::temp_dir().join(format!("cv-pages-{}", uuid::Uuid::new_v4())))
}

#[test]
fn the_dashboard_loads_without_errors_with_a_point_per_iteration() {
    let dir = scratch_dir();
    let mut browser = Browser::start();
    for n in [1, 2, 5] {
        let (reports, index) = sample(n);
        let html = page::render(&summarise(P, &reports, Some(&index), vec![]));
        let file = write_page(&dir.0, &format!("dashboard-{n}.html"), &html);
        let loaded = browser.load(&file, DASHBOARD_QUESTION);
        assert!(
            loaded.errors.is_empty(),
            "{n} iterations: {:?}",
            loaded.errors
        );
        let a = &loaded.answer;
        assert_eq!(a["points"], json!(n), "{a}");
        assert_eq!(
            a["inside"],
            json!(n),
            "every point drawn inside the chart: {a}"
        );
        assert_eq!(a["precision"], json!(n), "{a}");
        assert_eq!(a["rows"], json!(n), "{a}");
        assert_eq!(a["scripts"], json!(0), "{a}");
    }
}

#[test]
fn a_report_loads_without_errors() {
    let dir = scratch_dir();
    let (reports, _) = sample(2);
    let file = write_page(&dir.0, "report.html", &html::render(&reports[1]));
    let loaded = Browser::start().load(&file, "document.querySelectorAll('svg rect.p').length");
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    assert_eq!(loaded.answer, json!(2), "a precision bar per tag");
}

/// The check can fail: a page with a script error, a console error and a missing image is
/// caught three times over, and a chart short of a point is counted short.
#[test]
fn a_broken_page_is_caught() {
    let dir = scratch_dir();
    let (reports, index) = sample(3);
    let html = page::render(&summarise(P, &reports, Some(&index), vec![]));
    let first = html.find("<g class=\"point\"").unwrap();
    let end = first + html[first..].find("</g>").unwrap() + 4;
    let broken = format!(
        "{}{}",
        &html[..first],
        &html[end..].replace(
            "</body>",
            "<img src=\"missing.png\"><script>console.error('boom'); undefinedFunction();</script></body>"
        )
    );
    let file = write_page(&dir.0, "broken.html", &broken);
    let loaded = Browser::start().load(&file, DASHBOARD_QUESTION);
    let errors = loaded.errors.join("\n");
    assert!(errors.contains("boom"), "{errors}");
    assert!(errors.contains("undefinedFunction"), "{errors}");
    assert!(errors.contains("missing.png"), "{errors}");
    assert_eq!(loaded.answer["points"], json!(2));
}
