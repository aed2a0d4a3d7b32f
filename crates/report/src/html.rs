//! The bulletin as one self-contained HTML page (inline style and SVG charts, no script), in
//! Chinese or English. Deterministic: nothing depends on when or where it is rendered.

use std::fmt::Write;

use vigil_model::Level;
use vigil_model::time::{DAY, format_utc};
use vigil_rules::RuleSet;

use crate::{Bulletin, Rated, date, explain};

struct Words {
    title: &'static str,
    period: &'static str,
    partial: &'static str,
    region: &'static str,
    index: &'static str,
    stars: &'static str,
    change: &'static str,
    previous: &'static str,
    episodes: &'static str,
    movers: &'static str,
    rising: &'static str,
    falling: &'static str,
    daily: &'static str,
    by_level: &'static str,
    none: &'static str,
    opened: &'static str,
    resolved: &'static str,
    open: &'static str,
    capped: &'static str,
    method: &'static str,
    more: &'static str,
    compare: &'static str,
}

const ZH: Words = Words {
    title: "社会治安风险星级发布",
    period: "发布周期",
    partial: "（数据未覆盖整个周期）",
    region: "区域",
    index: "风险指数",
    stars: "星级",
    change: "较上期",
    previous: "上期星级",
    episodes: "预警",
    movers: "变化最大",
    rising: "上升",
    falling: "下降",
    daily: "每日风险指数",
    by_level: "本期预警（按最高等级）",
    none: "无",
    opened: "发布",
    resolved: "解除",
    open: "未解除",
    capped: "因本期预警等级封顶",
    method: "星级按本期指数在历史各期指数中的位置评定：最低五分之一为五星（最平稳），最高五分之一为一星；本期有红色预警的最多二星，有橙色预警的最多三星。",
    more: "另有",
    compare: "本期（深色）与上期（浅色）",
};

const EN: Words = Words {
    title: "Risk star ratings",
    period: "Period",
    partial: " (the data do not cover the whole period)",
    region: "Region",
    index: "Risk index",
    stars: "Stars",
    change: "Change",
    previous: "Previous",
    episodes: "Alerts",
    movers: "Top movers",
    rising: "Rising",
    falling: "Falling",
    daily: "Daily risk index",
    by_level: "Alert episodes of the period, by peak level",
    none: "none",
    opened: "opened",
    resolved: "resolved",
    open: "still open",
    capped: "capped by the period's alerts",
    method: "Stars place the period's index among every period index of the history: the lowest fifth gets five stars (calmest), the highest fifth one star. A red alert in the period caps the rating at two stars, an orange one at three.",
    more: "more:",
    compare: "this period (dark) against the previous one (light)",
};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn stars(n: Option<u8>) -> String {
    match n {
        Some(n) => (0..5).map(|i| if i < n { '★' } else { '☆' }).collect(),
        None => "–".into(),
    }
}

fn colour(l: Level) -> &'static str {
    match l {
        Level::Blue => "#2f6fde",
        Level::Yellow => "#e0b400",
        Level::Orange => "#ef7d1a",
        Level::Red => "#d7263d",
    }
}

/// Star colours: five stars green to one star red.
fn star_colour(n: Option<u8>) -> &'static str {
    match n {
        Some(5) => "#2e9e5b",
        Some(4) => "#8bbf3f",
        Some(3) => "#e0b400",
        Some(2) => "#ef7d1a",
        Some(_) => "#d7263d",
        None => "#c9ced6",
    }
}

fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1}"))
}

/// A scope in words: the domain's name, or what the composite and the evidence alarm are.
fn scope_name(rules: &RuleSet, scope: &str, lang: &str) -> String {
    match (scope, lang) {
        ("composite", "en") => "composite index".into(),
        ("composite", _) => "综合指数".into(),
        ("evidence", "en") => "evidence of an excess".into(),
        ("evidence", _) => "超额证据".into(),
        _ => rules.domains.iter().find(|d| d.id == scope).map_or(scope.to_string(), |d| d.name.get(lang).to_string()),
    }
}

fn label(rules: &RuleSet, l: Level, lang: &str) -> String {
    rules.grading.levels.iter().find(|s| s.level == l).map_or(l.as_str().to_string(), |s| s.label.get(lang).to_string())
}

/// The page, in `lang` (`zh` or `en`).
pub fn render(b: &Bulletin, rules: &RuleSet, lang: &str) -> String {
    let w = if lang == "en" { &EN } else { &ZH };
    let mut h = String::with_capacity(64 << 10);
    let range = format!("{} – {}", date(b.period.start), date(b.period.end - 1));
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{} {} {}</title>\n<style>{STYLE}</style></head><body>\n",
        esc(&b.rules_name),
        esc(w.title),
        b.period.label()
    );
    let _ = writeln!(
        h,
        "<header><h1>{}</h1><div class=\"sub\">{} · {}: <b>{}</b> ({range}){} · {} · rules {}</div></header>",
        esc(w.title),
        esc(&b.rules_name),
        esc(w.period),
        b.period.label(),
        if b.partial { w.partial } else { "" },
        esc(&b.level_name),
        esc(&b.rules_version)
    );

    // Summary: episodes by peak level.
    let _ = write!(h, "<section><h2>{}</h2><div class=\"levels\">", esc(w.by_level));
    for (i, l) in [Level::Red, Level::Orange, Level::Yellow, Level::Blue].into_iter().enumerate() {
        let _ = write!(
            h,
            "<span class=\"lv\" style=\"background:{}\">{} {}</span>",
            colour(l),
            esc(&label(rules, l, lang)),
            b.by_level[i]
        );
    }
    h.push_str("</div></section>\n");

    // The table, highest index first.
    let mut order: Vec<usize> = (0..b.regions.len()).collect();
    order.sort_by(|&x, &y| {
        let (a, c) = (&b.regions[x], &b.regions[y]);
        c.index.unwrap_or(f64::NEG_INFINITY).total_cmp(&a.index.unwrap_or(f64::NEG_INFINITY)).then(a.code.cmp(&c.code))
    });
    let _ = writeln!(
        h,
        "<section><h2>{}</h2><table class=\"ratings\"><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
        esc(w.stars),
        esc(w.region),
        esc(w.index),
        esc(w.stars),
        esc(w.change),
        esc(w.previous),
        esc(w.episodes)
    );
    for &i in &order {
        let r = &b.regions[i];
        let change = r.change().map_or("–".into(), |c| {
            let arrow = if c > 0.05 {
                "▲"
            } else if c < -0.05 {
                "▼"
            } else {
                "＝"
            };
            format!("{arrow} {:+.1}", c)
        });
        let peak = r
            .episodes
            .first()
            .map_or(String::new(), |e| format!(" <span class=\"dot\" style=\"background:{}\"></span>", colour(e.peak)));
        let cap = if r.capped_by.is_some() {
            format!(" <span class=\"note\">{}</span>", esc(w.capped))
        } else {
            String::new()
        };
        let _ = writeln!(
            h,
            "<tr data-region=\"{}\"><td>{} <span class=\"code\">{}</span></td><td class=\"num\">{}</td><td class=\"stars\" style=\"color:{}\">{}{cap}</td><td class=\"num\">{change}</td><td class=\"stars muted\">{}</td><td class=\"num\">{}{peak}</td></tr>",
            esc(&r.code),
            esc(&r.name),
            esc(&r.code),
            f1(r.index),
            star_colour(r.stars),
            stars(r.stars),
            stars(r.previous_stars),
            r.episode_count
        );
    }
    let _ = writeln!(h, "</table><p class=\"note\">{}</p>", esc(w.method));
    if let Some(t) = b.thresholds {
        let _ = writeln!(
            h,
            "<p class=\"note\">★★★★★ ≤ {:.1} &lt; ★★★★ ≤ {:.1} &lt; ★★★ ≤ {:.1} &lt; ★★ ≤ {:.1} &lt; ★ · n = {}</p>",
            t[0], t[1], t[2], t[3], b.history_values
        );
    }
    h.push_str("</section>\n");

    // Chart: the index this period against the previous one.
    let _ = write!(h, "<section><h2>{} <span class=\"note\">{}</span></h2>", esc(w.index), esc(w.compare));
    h.push_str(&bars(b, &order));
    h.push_str("</section>\n");

    // Movers.
    let _ = write!(h, "<section><h2>{}</h2><div class=\"movers\">", esc(w.movers));
    for (title, list) in [(w.rising, &b.risers), (w.falling, &b.fallers)] {
        let _ = write!(h, "<div><h3>{}</h3><ol>", esc(title));
        if list.is_empty() {
            let _ = write!(h, "<li class=\"muted\">{}</li>", esc(w.none));
        }
        for &i in list.iter() {
            let r = &b.regions[i];
            let _ = write!(
                h,
                "<li>{} <b>{:+.1}</b> ({} → {})</li>",
                esc(&r.name),
                r.change().unwrap_or(0.0),
                f1(r.previous),
                f1(r.index)
            );
        }
        h.push_str("</ol></div>");
    }
    h.push_str("</div></section>\n");

    // Daily index, one small chart per region.
    let max = b.regions.iter().flat_map(|r| r.daily.iter().flatten()).fold(1.0f64, |m, &v| m.max(v));
    let _ = write!(h, "<section><h2>{}</h2><div class=\"multiples\">", esc(w.daily));
    for &i in &order {
        let r = &b.regions[i];
        let _ = write!(
            h,
            "<div class=\"small\"><div>{} <span class=\"code\">{}</span></div>{}</div>",
            esc(&r.name),
            esc(&r.code),
            line(r, max)
        );
    }
    let _ = writeln!(
        h,
        "</div><p class=\"note\">{} → {} · 0 – {:.0}</p></section>",
        date(b.period.start),
        date(b.period.end - 1),
        max
    );

    // Episodes per region.
    let _ = write!(h, "<section><h2>{}</h2>", esc(w.episodes));
    for &i in &order {
        let r = &b.regions[i];
        if r.episodes.is_empty() {
            continue;
        }
        let _ =
            write!(h, "<h3>{} <span class=\"code\">{}</span></h3><ul class=\"episodes\">", esc(&r.name), esc(&r.code));
        for e in &r.episodes {
            let local = |t| rules.zone.format(t).chars().take(16).collect::<String>().replace('T', " ");
            let end = e.resolved.map_or(w.open.to_string(), |t| format!("{} {}", w.resolved, local(t)));
            let _ = write!(
                h,
                "<li><span class=\"lv\" style=\"background:{}\">{}</span> {} <span class=\"code\">{}</span> · {} · {} {} · {}<div class=\"why\">{}</div></li>",
                colour(e.peak),
                esc(&label(rules, e.peak, lang)),
                esc(&e.region_name),
                esc(&e.region),
                esc(&scope_name(rules, &e.scope, lang)),
                w.opened,
                local(e.opened),
                esc(&end),
                esc(&explain(&e.peak_record, lang))
            );
        }
        if r.episode_count > r.episodes.len() {
            let _ = write!(h, "<li class=\"muted\">{} {}</li>", w.more, r.episode_count - r.episodes.len());
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
    let _ = writeln!(
        h,
        "<footer>vigil · {} · {} {} – {} UTC</footer></body></html>",
        esc(&b.rules_version),
        b.period.label(),
        format_utc(rules.zone.utc(b.period.start * DAY)),
        format_utc(rules.zone.utc(b.period.end * DAY))
    );
    h
}

/// Horizontal bars: this period's index (dark) over the previous one's (light).
fn bars(b: &Bulletin, order: &[usize]) -> String {
    let max = b.regions.iter().flat_map(|r| [r.index, r.previous]).flatten().fold(1.0f64, f64::max);
    let (row, label_w, bar_w) = (22.0, 160.0, 480.0);
    let height = row * order.len() as f64 + 8.0;
    let mut s = format!(
        "<svg class=\"chart\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        label_w + bar_w + 60.0,
        label_w + bar_w + 60.0
    );
    for (k, &i) in order.iter().enumerate() {
        let r = &b.regions[i];
        let y = 4.0 + row * k as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + 14.0,
            esc(&r.name)
        );
        if let Some(p) = r.previous {
            let _ = write!(
                s,
                "<rect x=\"{label_w}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#d5dbe4\"/>",
                y + 1.0,
                p / max * bar_w
            );
        }
        if let Some(v) = r.index {
            let _ = write!(
                s,
                "<rect x=\"{label_w}\" y=\"{:.1}\" width=\"{:.1}\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{v:.1}</text>",
                y + 4.0,
                v / max * bar_w,
                star_colour(r.stars),
                label_w + v / max * bar_w + 4.0,
                y + 13.0
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A region's daily index as a small line chart on a shared scale.
fn line(r: &Rated, max: f64) -> String {
    let (w, h) = (180.0, 48.0);
    let n = r.daily.len().max(2) as f64 - 1.0;
    let mut path = String::new();
    let mut pen_up = true;
    for (i, v) in r.daily.iter().enumerate() {
        match v {
            Some(v) => {
                let _ = write!(
                    path,
                    "{}{:.1},{:.1} ",
                    if pen_up { "M" } else { "L" },
                    i as f64 / n * w,
                    h - 2.0 - v / max * (h - 4.0)
                );
                pen_up = false;
            }
            None => pen_up = true,
        }
    }
    format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><rect width=\"{w}\" height=\"{h}\" fill=\"#f3f5f8\"/><path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"/></svg>",
        path.trim_end(),
        star_colour(r.stars)
    )
}

const STYLE: &str = "body{font:14px/1.5 system-ui,'Noto Sans CJK SC',sans-serif;color:#1d2430;max-width:980px;margin:24px auto;padding:0 16px}\
h1{font-size:24px;margin:0}h2{font-size:17px;margin:28px 0 8px;border-bottom:2px solid #1d2430}h3{font-size:15px;margin:14px 0 4px}\
.sub{color:#6b7380}.note{color:#6b7380;font-size:12px}.muted{color:#9aa1ab}.code{color:#6b7380;font-size:12px}\
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #d9dde3;text-align:left}th{font-size:12px;color:#6b7380}\
td.num{text-align:right;font-variant-numeric:tabular-nums}td.stars{font-size:16px;letter-spacing:1px}\
.levels{display:flex;gap:10px}.lv{color:#fff;border-radius:3px;padding:1px 8px;font-size:12px;font-weight:600}\
.dot{display:inline-block;width:9px;height:9px;border-radius:50%}.movers{display:grid;grid-template-columns:1fr 1fr;gap:16px}\
.multiples{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:10px}.small{font-size:12px}\
.chart text{font-size:12px;fill:#1d2430}ul.episodes{list-style:none;padding:0}ul.episodes li{margin:4px 0;padding:4px 0;border-bottom:1px dotted #d9dde3}\
.why{color:#333;font-size:13px}footer{margin-top:32px;color:#9aa1ab;font-size:12px}";
