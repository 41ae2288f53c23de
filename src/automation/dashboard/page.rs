//! The dashboard as a static page: a table of the iterations, an inline SVG line chart of
//! precision, recall and average precision over them, `latest` and the published iteration.
//! No scripts, no external assets, every piece of the user's text escaped; links are relative
//! (to the reports beside it and to the copies in the same container), so the page works from
//! the container and from a local copy of it alike.

use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{Dashboard, Gate, IterationRow, Point, NO_REPORT};
use crate::automation::html::{esc, pct};

/// Path characters left as they are in a link; the rest (spaces in backup names) encoded.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A link from `reports/{projectId}/index.html` to `path` in the same container.
fn container_link(path: &str) -> String {
    let encoded: Vec<String> = path
        .split('/')
        .map(|s| utf8_percent_encode(s, PATH_SEGMENT).to_string())
        .collect();
    format!("../../{}", encoded.join("/"))
}

fn report_link(iteration_id: &str) -> String {
    format!("{}.html", utf8_percent_encode(iteration_id, PATH_SEGMENT))
}

pub fn render(d: &Dashboard) -> String {
    let mut h = String::new();
    let title = format!("Project {} — iterations", d.project_id);
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
        "<p class=\"ids\">{} iteration(s), from their training reports and the model index</p>",
        d.iterations.len()
    );
    summary(&mut h, d);
    h.push_str("<h2>Over the iterations</h2>\n");
    h.push_str(&chart(d));
    h.push_str(
        "<p class=\"legend\"><span class=\"k precision\"></span> precision \
         <span class=\"k recall\"></span> recall <span class=\"k ap\"></span> average precision \
         <span class=\"k bar\"></span> publish bars</p>\n",
    );
    table(&mut h, d);
    if !d.unreadable.is_empty() {
        h.push_str("<h2>Unreadable reports</h2><ul class=\"missed\">");
        for u in &d.unreadable {
            let _ = write!(h, "<li><code>{}</code></li>", esc(u));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn summary(h: &mut String, d: &Dashboard) {
    h.push_str("<table class=\"facts\">");
    match &d.published {
        Some(p) => {
            let _ = write!(
                h,
                "<tr><th>published</th><td><a href=\"{}\">{}</a> as <code>{}</code></td></tr>",
                esc(&report_link(&p.iteration_id)),
                esc(&p.name),
                esc(&p.publish_name)
            );
        }
        None => h.push_str("<tr><th>published</th><td>none recorded</td></tr>"),
    }
    if d.latest.is_empty() {
        h.push_str("<tr><th>latest</th><td>no model in the index yet</td></tr>");
    }
    for l in &d.latest {
        let iteration = match &l.name {
            Some(name) => format!(
                "<a href=\"{}\">{}</a>",
                esc(&report_link(&l.iteration_id)),
                esc(name)
            ),
            None => format!("<code>{}</code>", esc(&l.iteration_id)),
        };
        let _ = write!(
            h,
            "<tr><th>latest {}</th><td>{iteration} · <a href=\"{}\">copy</a>",
            esc(&l.platform),
            esc(&container_link(&l.path))
        );
        if let Some(alias) = &l.alias {
            let _ = write!(
                h,
                " · <a href=\"{}\"><code>{}</code></a>",
                esc(&container_link(alias)),
                esc(alias)
            );
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table>\n");
}

fn table(h: &mut String, d: &Dashboard) {
    h.push_str(
        "<h2>Iterations</h2><table class=\"iterations\"><tr><th>iteration</th><th>trained at</th>\
         <th>precision</th><th>recall</th><th>AP</th><th>latest</th><th>publish</th><th>files</th></tr>",
    );
    for i in &d.iterations {
        let figure = |v: Option<f64>| v.map(pct).unwrap_or_else(|| "—".into());
        let f = i.figures;
        let _ = write!(
            h,
            "<tr class=\"iteration\" id=\"i-{}\"><td>{}<br><code class=\"id\">{}</code></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>",
            esc(&i.iteration_id),
            esc(&i.name),
            esc(&i.iteration_id),
            esc(&i
                .trained_at
                .as_deref()
                .map(|t| t.replacen('T', " ", 1))
                .unwrap_or_else(|| match i.status.as_str() {
                    "TrainingFailed" => "failed".into(),
                    NO_REPORT => "no report".into(),
                    _ => "—".into(),
                })),
            figure(f.map(|f| f.precision)),
            figure(f.map(|f| f.recall)),
            figure(f.and_then(|f| f.average_precision)),
            esc(&i.latest_for.join(", ")),
            gate(i)
        );
        let mut links = Vec::new();
        if i.status != NO_REPORT {
            links.push(format!(
                "<a href=\"{}\">report</a>",
                esc(&report_link(&i.iteration_id))
            ));
        }
        for (platform, path) in &i.copies {
            links.push(format!(
                "<a href=\"{}\">{}</a>",
                esc(&container_link(path)),
                esc(platform)
            ));
        }
        h.push_str(&links.join(" · "));
        h.push_str("</td></tr>");
    }
    h.push_str("</table>\n");
}

fn gate(i: &IterationRow) -> String {
    match &i.gate {
        Gate::None => "—".into(),
        Gate::Published { name } => format!("published as <code>{}</code>", esc(name)),
        Gate::Refused { name, missed } => {
            let why: Vec<String> = missed
                .iter()
                .map(|m| {
                    format!(
                        "{} {} is {:.1} pt under {}",
                        esc(&m.figure),
                        pct(m.value),
                        m.by * 100.0,
                        pct(m.min)
                    )
                })
                .collect();
            format!(
                "<span class=\"refused\" title=\"not published as {}\">refused: {}</span>",
                esc(name),
                why.join("; ")
            )
        }
        Gate::Failed { name, detail } => format!(
            "<span class=\"refused\">publish as <code>{}</code> failed: {}</span>",
            esc(name),
            esc(detail)
        ),
    }
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 56.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;

/// One x position per iteration with figures (in training order), y from 0 % to 100 %. Each
/// iteration is a `<g class="point">` holding a circle per figure it has.
fn chart(d: &Dashboard) -> String {
    let points: Vec<(&IterationRow, Point)> = d
        .iterations
        .iter()
        .filter_map(|i| i.figures.map(|f| (i, f)))
        .collect();
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |n: usize| {
        if points.len() < 2 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * n as f64 / (points.len() - 1) as f64
        }
    };
    let (floor, step) = y_range(d, &points);
    let y = |v: f64| TOP + (1.0 - (v.clamp(floor, 1.0) - floor) / (1.0 - floor)) * plot_h;
    let mut s = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" width=\"{WIDTH}\" \
         height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         aria-label=\"precision, recall and average precision over the iterations\">"
    );
    let ticks = ((1.0 - floor) / step).round() as usize;
    for tick in (0..=ticks).map(|k| floor + step * k as f64) {
        let _ = write!(
            s,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            y(tick) + 4.0,
            format_args!("{:.0}%", tick * 100.0),
            y = y(tick)
        );
    }
    if let Some((min_precision, min_recall)) = d.bars {
        for (class, v, label) in [
            ("bar precision", min_precision, "publish bar: precision"),
            ("bar recall", min_recall, "publish bar: recall"),
        ] {
            let _ = write!(
                s,
                "<line class=\"{class}\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"><title>{label} {}</title></line>",
                WIDTH - RIGHT,
                pct(v),
                y = y(v)
            );
        }
    }
    type Figure = fn(&Point) -> Option<f64>;
    let series: [(&str, Figure); 3] = [
        ("precision", |p| Some(p.precision)),
        ("recall", |p| Some(p.recall)),
        ("ap", |p| p.average_precision),
    ];
    for (class, figure) in series {
        let line: Vec<String> = points
            .iter()
            .enumerate()
            .filter_map(|(n, (_, p))| figure(p).map(|v| format!("{:.1},{:.1}", x(n), y(v))))
            .collect();
        if line.len() > 1 {
            let _ = write!(
                s,
                "<polyline class=\"line {class}\" points=\"{}\"/>",
                line.join(" ")
            );
        }
    }
    for (n, (i, p)) in points.iter().enumerate() {
        let _ = write!(
            s,
            "<g class=\"point\" data-iteration=\"{}\">",
            esc(&i.iteration_id)
        );
        for (class, label, figure) in [
            ("precision", "precision", Some(p.precision)),
            ("recall", "recall", Some(p.recall)),
            ("ap", "average precision", p.average_precision),
        ] {
            if let Some(v) = figure {
                let _ = write!(
                    s,
                    "<circle class=\"{class}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"><title>{}: {label} {}</title></circle>",
                    x(n),
                    y(v),
                    esc(&i.name),
                    pct(v)
                );
            }
        }
        let _ = write!(
            s,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text></g>",
            x(n),
            HEIGHT - BOTTOM + 18.0,
            esc(&short(&i.name))
        );
    }
    if points.is_empty() {
        let _ = write!(
            s,
            "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">no figures yet</text>",
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The y axis: from a round figure under the lowest figure or bar, up to 100 %, so that
/// iterations a few points apart do not share one line; with its tick step.
fn y_range(d: &Dashboard, points: &[(&IterationRow, Point)]) -> (f64, f64) {
    let lowest = points
        .iter()
        .flat_map(|(_, p)| [Some(p.precision), Some(p.recall), p.average_precision])
        .flatten()
        .chain(d.bars.iter().flat_map(|(p, r)| [*p, *r]))
        .fold(1.0_f64, f64::min)
        .clamp(0.0, 1.0);
    let step = if lowest >= 0.5 { 0.1 } else { 0.25 };
    // A step under the round figure at or under the lowest, so no point sits on the axis.
    let floor = ((lowest / step + 1e-9).floor() - 1.0).max(0.0) * step;
    (floor, step)
}

/// An axis label: the name, cut to fit under its point.
fn short(name: &str) -> String {
    const MAX: usize = 16;
    if name.chars().count() <= MAX {
        name.to_string()
    } else {
        let cut: String = name.chars().take(MAX - 1).collect();
        format!("{cut}…")
    }
}

const STYLE: &str = "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:960px;color:#1a202c;padding:0 1em}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}\
.ids{color:#4a5568;font-size:.9em}code{font-size:.9em}a{color:#2b6cb0}\
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.3em .8em .3em 0;text-align:left;vertical-align:top}\
.iterations td,.iterations th{border-bottom:1px solid #e2e8f0}.iterations td{white-space:nowrap}.iterations td:nth-child(7){white-space:normal}\
code.id{font-size:.72em;color:#4a5568}.refused{color:#c53030}.missed{color:#c53030}\
svg .grid{stroke:#e2e8f0}svg .axis{font-size:12px;fill:#4a5568}\
svg .line{fill:none;stroke-width:2}svg .line.precision{stroke:#3182ce}svg .line.recall{stroke:#38a169}svg .line.ap{stroke:#805ad5}\
svg circle.precision{fill:#3182ce}svg circle.recall{fill:#38a169}svg circle.ap{fill:#805ad5}\
svg .bar{stroke-width:1.5;stroke-dasharray:5 3}svg .bar.precision{stroke:#3182ce}svg .bar.recall{stroke:#38a169}\
.legend .k{display:inline-block;width:14px;height:10px;margin:0 .3em 0 1em;vertical-align:middle}\
.legend .precision{background:#3182ce}.legend .recall{background:#38a169}.legend .ap{background:#805ad5}\
.legend .bar{border-top:2px dashed #4a5568;height:0}";

#[cfg(test)]
mod tests {
    use super::super::summarise;
    use super::super::tests::{two, P};
    use super::*;
    use crate::domain::examples::ITERATION;

    #[test]
    fn a_static_page_with_a_point_per_iteration_and_the_gate_s_reasons() {
        let (mut reports, index) = two();
        reports[0].iteration.as_mut().unwrap().name = "<script>alert(1)</script>".into();
        let html = render(&summarise(P, &reports, Some(&index), vec![]));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script"), "no scripts; user text escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("src="), "no external assets");
        assert!(!html.contains("http://") || !html.contains("href=\"http"));
        assert_eq!(html.matches("<g class=\"point\"").count(), 2);
        assert_eq!(html.matches("<circle class=\"precision\"").count(), 2);
        assert_eq!(html.matches("<polyline").count(), 3);
        // The axis from 70 % (a step under 80 %, under the lowest figure, 81 %) to 100 %: the first's
        // 93 % precision at 12 + (1 - 0.23 / 0.3) * 204 = 59.6, at the left edge.
        assert!(html.contains("<circle class=\"precision\" cx=\"48.0\" cy=\"59.6\""));
        assert!(html.contains(">70%</text>") && !html.contains(">60%</text>"));
        assert!(html.contains("precision 81.0% is 9.0 pt under 90.0%"));
        assert!(html.contains("published as <code>prod</code>"));
        // Copies by relative links, the space in the backup name encoded.
        assert!(html.contains(&format!(
            "href=\"../../{P}/{ITERATION}/ONNX/{P}%20-%20{}",
            &ITERATION[..8]
        )));
        assert!(html.contains(&format!("href=\"{ITERATION}.html\">report</a>")));
    }

    #[test]
    fn a_copy_without_a_report_links_no_report() {
        let older = "0b2c3d4e-5f60-4172-8394-a5b6c7d8e9f0";
        let index = super::super::tests::index(&[(older, "ONNX")]);
        let html = render(&summarise(P, &[], Some(&index), vec![]));
        assert!(html.contains(&format!("<th>latest ONNX</th><td><code>{older}</code>")));
        assert!(html.contains("no report"));
        assert!(
            !html.contains(&format!("{older}.html")),
            "no link to a report that is not there"
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let (reports, index) = two();
        let d = summarise(P, &reports, Some(&index), vec![]);
        assert_eq!(render(&d), render(&d.clone()));
    }

    #[test]
    fn one_iteration_sits_in_the_middle_and_none_says_so() {
        let (reports, _) = two();
        let one = render(&summarise(P, &reports[..1], None, vec![]));
        assert_eq!(one.matches("<g class=\"point\"").count(), 1);
        assert!(one.contains("cx=\"356.0\""));
        assert!(!one.contains("<polyline"), "no line through one point");
        let none = render(&summarise(P, &[], None, vec![]));
        assert!(none.contains("no figures yet"));
        assert!(none.contains("no model in the index yet"));
    }
}
