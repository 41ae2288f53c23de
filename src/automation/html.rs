//! The report as a static page: the same figures, a bar per tag in inline SVG, the previous
//! iteration's figures beside them, a link to the project's dashboard beside it
//! ([`super::dashboard`]). No scripts, no external assets: it opens from a storage browser as
//! it is.

use std::fmt::Write as _;

use super::report::{Figures, Report, TagFigures};

/// Text for HTML, escaped (tag names are the user's).
pub(super) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

fn delta(now: f64, before: Option<f64>) -> String {
    match before {
        Some(b) => {
            let d = (now - b) * 100.0;
            let class = if d > 0.05 {
                "up"
            } else if d < -0.05 {
                "down"
            } else {
                "same"
            };
            format!("<td class=\"{class}\">{d:+.1} pt</td>")
        }
        None => "<td>—</td>".to_string(),
    }
}

pub fn render(report: &Report) -> String {
    let title = match &report.iteration {
        Some(i) => format!("{} — {}", i.name, report.status),
        None => format!("Iteration {} — {}", report.iteration_id, report.status),
    };
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let _ = writeln!(
        h,
        "<p class=\"ids\">project <code>{}</code> · iteration <code>{}</code> · generated {} · \
         <a href=\"index.html\">all iterations</a></p>",
        esc(&report.project_id),
        esc(&report.iteration_id),
        esc(&report.generated_at)
    );
    if let Some(i) = &report.iteration {
        h.push_str("<table class=\"facts\">");
        for (k, v) in [
            ("status", Some(i.status.clone())),
            ("trained at", i.trained_at.clone()),
            ("domain", i.domain_id.clone()),
            ("classification", i.classification_type.clone()),
            ("training type", i.training_type.clone()),
            (
                "exportable to",
                Some(if i.exportable {
                    i.exportable_to.join(", ")
                } else {
                    "not exportable".into()
                }),
            ),
            ("published as", i.publish_name.clone()),
        ] {
            let _ = write!(
                h,
                "<tr><th>{k}</th><td>{}</td></tr>",
                esc(v.as_deref().unwrap_or("—"))
            );
        }
        h.push_str("</table>\n");
    }
    match &report.performance {
        Some(f) => overall(
            &mut h,
            f,
            report.previous.as_ref().map(|p| &p.figures),
            report,
        ),
        None if report.status == "TrainingFailed" => {
            h.push_str("<p class=\"failed\">The training failed: there are no figures.</p>\n")
        }
        None => h.push_str("<p>No figures.</p>\n"),
    }
    if !report.exports.is_empty() {
        h.push_str("<h2>Exports</h2><table class=\"steps\"><tr><th>platform</th><th>flavor</th><th>outcome</th><th>detail</th></tr>");
        for e in &report.exports {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.platform),
                esc(e.flavor.as_deref().unwrap_or("—")),
                esc(&e.outcome),
                esc(e.detail.as_deref().unwrap_or(""))
            );
        }
        h.push_str("</table>\n");
    }
    if let Some(p) = &report.publish {
        let _ = write!(
            h,
            "<h2>Publish</h2><p>as <code>{}</code> at precision ≥ {} and recall ≥ {}: <strong>{}</strong></p>",
            esc(&p.name),
            pct(p.min_precision),
            pct(p.min_recall),
            esc(&p.outcome)
        );
        if !p.missed.is_empty() {
            h.push_str("<ul class=\"missed\">");
            for m in &p.missed {
                let _ = write!(
                    h,
                    "<li>{} {} is {} pt under the bar of {}</li>",
                    esc(&m.figure),
                    pct(m.value),
                    format_args!("{:.1}", m.by * 100.0),
                    pct(m.min)
                );
            }
            h.push_str("</ul>");
        }
        if let Some(d) = &p.detail {
            let _ = write!(h, "<p>{}</p>", esc(d));
        }
        h.push('\n');
    }
    if !report.notes.is_empty() {
        h.push_str("<h2>Notes</h2><ul>");
        for n in &report.notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn overall(h: &mut String, f: &Figures, before: Option<&Figures>, report: &Report) {
    let _ = write!(
        h,
        "<h2>Performance</h2><p>at a probability threshold of {}{}</p>",
        pct(f.threshold),
        f.overlap_threshold
            .map(|o| format!(" and an overlap threshold of {}", pct(o)))
            .unwrap_or_default()
    );
    let previous_label = report
        .previous
        .as_ref()
        .map(|p| format!("{} ({})", p.name, p.iteration_id))
        .unwrap_or_else(|| "no earlier report".into());
    let _ = write!(
        h,
        "<table class=\"figures\"><tr><th></th><th>this iteration</th><th>previous: {}</th><th>change</th></tr>",
        esc(&previous_label)
    );
    for (name, now, then) in [
        ("precision", Some(f.precision), before.map(|b| b.precision)),
        ("recall", Some(f.recall), before.map(|b| b.recall)),
        (
            "average precision",
            f.average_precision,
            before.and_then(|b| b.average_precision),
        ),
    ] {
        let _ = write!(
            h,
            "<tr><th>{name}</th><td>{}</td><td>{}</td>{}</tr>",
            now.map(pct).unwrap_or_else(|| "—".into()),
            then.map(pct).unwrap_or_else(|| "—".into()),
            match now {
                Some(n) => delta(n, then),
                None => "<td>—</td>".into(),
            }
        );
    }
    h.push_str("</table>\n<h2>Per tag</h2>\n");
    h.push_str(&chart(&f.per_tag, before.map(|b| b.per_tag.as_slice())));
    h.push_str(
        "<p class=\"legend\"><span class=\"k p\"></span> precision <span class=\"k r\"></span> recall \
         <span class=\"k prev\"></span> previous iteration</p>\n",
    );
}

const LABEL_W: f64 = 160.0;
const BAR_W: f64 = 420.0;
const ROW_H: f64 = 46.0;

/// One row per tag: a precision bar and a recall bar, the previous iteration's figure as an
/// outline over each, the values at the end.
fn chart(tags: &[TagFigures], before: Option<&[TagFigures]>) -> String {
    let height = ROW_H * tags.len().max(1) as f64 + 8.0;
    let width = LABEL_W + BAR_W + 70.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" aria-label=\"precision and recall per tag\">"
    );
    for (n, tag) in tags.iter().enumerate() {
        let y = 4.0 + n as f64 * ROW_H;
        let prev = before.and_then(|b| b.iter().find(|t| t.name == tag.name || t.id == tag.id));
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" class=\"tag\">{}</text>",
            y + 22.0,
            esc(&tag.name)
        );
        for (row, value, old, class) in [
            (0.0, tag.precision, prev.map(|p| p.precision), "p"),
            (18.0, tag.recall, prev.map(|p| p.recall), "r"),
        ] {
            let by = y + row + 4.0;
            let w = (value.clamp(0.0, 1.0) * BAR_W).round();
            let _ = write!(
                s,
                "<rect x=\"{LABEL_W}\" y=\"{by}\" width=\"{BAR_W}\" height=\"14\" class=\"track\"/>\
                 <rect x=\"{LABEL_W}\" y=\"{by}\" width=\"{w}\" height=\"14\" class=\"{class}\"><title>{} {}</title></rect>",
                if class == "p" { "precision" } else { "recall" },
                pct(value)
            );
            if let Some(old) = old {
                let ow = (old.clamp(0.0, 1.0) * BAR_W).round();
                let _ = write!(
                    s,
                    "<rect x=\"{LABEL_W}\" y=\"{}\" width=\"{ow}\" height=\"10\" class=\"prev\"><title>previous {}</title></rect>",
                    by + 2.0,
                    pct(old)
                );
            }
            let _ = write!(
                s,
                "<text x=\"{}\" y=\"{}\" class=\"v\">{}</text>",
                LABEL_W + BAR_W + 6.0,
                by + 12.0,
                pct(value)
            );
        }
    }
    s.push_str("</svg>");
    s
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:760px;color:#1a202c;padding:0 1em}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}\
.ids{color:#4a5568;font-size:.9em}code{font-size:.95em}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .8em .25em 0;text-align:left;vertical-align:top}\
.figures td,.figures th{border-bottom:1px solid #e2e8f0}.up{color:#2f855a}.down{color:#c53030}.same{color:#4a5568}\
.failed{color:#c53030;font-weight:600}.missed{color:#c53030}\
svg .tag{font-size:13px;fill:#1a202c}svg .v{font-size:12px;fill:#4a5568}\
svg .track{fill:#edf2f7}svg .p{fill:#3182ce}svg .r{fill:#38a169}\
svg .prev{fill:none;stroke:#1a202c;stroke-width:1.5;stroke-dasharray:4 2}\
.legend .k{display:inline-block;width:14px;height:10px;margin:0 .3em 0 1em;vertical-align:middle}\
.legend .p{background:#3182ce}.legend .r{background:#38a169}.legend .prev{border:1.5px dashed #1a202c}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::automation::report::*;

    fn report() -> Report {
        let tag = |name: &str, p: f64, r: f64| TagFigures {
            id: format!("id-{name}"),
            name: name.into(),
            precision: p,
            recall: r,
            average_precision: Some(0.9),
        };
        let figures = |precision: f64, tags: Vec<TagFigures>| Figures {
            threshold: 0.5,
            overlap_threshold: None,
            precision,
            recall: 0.89,
            average_precision: Some(0.94),
            precision_std_deviation: 0.0,
            recall_std_deviation: 0.0,
            per_tag: tags,
        };
        Report {
            project_id: "p".into(),
            iteration_id: "i".into(),
            status: "TrainingCompleted".into(),
            generated_at: "2026-12-01T00:00:00Z".into(),
            iteration: None,
            performance: Some(figures(
                0.93,
                vec![
                    tag("scratch", 0.94, 0.88),
                    tag("<script>alert(1)</script>", 0.5, 0.25),
                ],
            )),
            previous: Some(Previous {
                iteration_id: "i0".into(),
                name: "Iteration 3".into(),
                trained_at: None,
                figures: figures(0.90, vec![tag("scratch", 0.90, 0.80)]),
            }),
            exports: vec![],
            publish: Some(PublishLine {
                name: "prod".into(),
                outcome: "belowBar".into(),
                min_precision: 0.95,
                min_recall: 0.9,
                missed: vec![Miss {
                    figure: "precision".into(),
                    value: 0.93,
                    min: 0.95,
                    by: 0.02,
                }],
                detail: None,
            }),
            notes: vec![],
        }
    }

    #[test]
    fn a_static_page_with_a_bar_per_tag_and_the_previous_iteration() {
        let html = render(&report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            !html.contains("<script"),
            "no scripts, and user text is escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("src="), "no external assets");
        // One link: to the project's dashboard beside it.
        assert_eq!(html.matches("href=").count(), 1);
        assert!(html.contains("<a href=\"index.html\">all iterations</a>"));
        // Two tags, a precision and a recall bar each, full width 420 at 100 %.
        assert_eq!(html.matches("class=\"p\"><title>").count(), 2);
        assert_eq!(html.matches("class=\"r\"><title>").count(), 2);
        assert!(
            html.contains("width=\"395\" height=\"14\" class=\"p\""),
            "94 % of 420"
        );
        // The previous iteration's figure for the tag it had, and none for the new tag.
        assert_eq!(html.matches("class=\"prev\"><title>previous").count(), 2);
        assert!(html.contains("previous: Iteration 3 (i0)"));
        assert!(html.contains("+3.0 pt"), "precision 93 % against 90 %");
        assert!(html.contains("precision 93.0% is 2.0 pt under the bar of 95.0%"));
    }
}
