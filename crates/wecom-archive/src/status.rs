//! `wecom-archive status`: per stream, the committed seq, the newest seq known, the lag, the dead letters
//! and the last error, read from the data directory (cursor files, `status.json`, dead-letter segments).
//! Works while a run is going (read-only) and without the corp secret (the file is parsed, not validated).

use std::path::Path;

use anyhow::Context;
use wecom_pipeline::ops::{collect_status, MediaSummary, StatusReport};
use wecom_pipeline::Config;

pub fn status(config: &Path, json: bool) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read config {}", config.display()))?;
    let cfg = Config::parse(&text, config)?;
    let report = collect_status(&cfg.sink.data_dir, &cfg.corp.corp_id).with_context(|| {
        format!(
            "reading stream status under {}",
            cfg.sink.data_dir.join(&cfg.corp.corp_id).display()
        )
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// The human table: one line per stream.
pub fn table(report: &StatusReport) -> String {
    let mut out = format!("corp {}\n", report.corp_id);
    if report.streams.is_empty() {
        out.push_str("no stream has committed anything yet\n");
        return out;
    }
    let rows: Vec<[String; 7]> = report
        .streams
        .iter()
        .map(|s| {
            [
                s.stream.clone(),
                s.committed_seq.to_string(),
                s.newest_seq_known.to_string(),
                s.lag.to_string(),
                s.dead_letters.to_string(),
                s.media.as_ref().map_or_else(|| "-".to_string(), media_cell),
                s.last_error.as_ref().map_or_else(
                    || "-".to_string(),
                    |e| format!("{} (seq {}, {})", e.message, e.seq, e.at),
                ),
            ]
        })
        .collect();
    let header = [
        "STREAM",
        "COMMITTED",
        "NEWEST",
        "LAG",
        "DEAD",
        "MEDIA",
        "LAST ERROR",
    ];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else if i == 0 {
                l.push_str(&format!("{c:<w$}  "));
            } else {
                l.push_str(&format!("{c:>w$}  "));
            }
        }
        l.push('\n');
        l
    };
    out.push_str(&line(header.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `stopped: 12 pending, 1 failed, 1.2 GiB stored`.
fn media_cell(m: &MediaSummary) -> String {
    let mut cell = format!(
        "{}: {} pending, {} failed, {} stored",
        m.state,
        m.backlog,
        m.objects_failed,
        human_bytes(m.bytes_stored)
    );
    if let Some(age) = m.oldest_pending_age_secs.filter(|a| *a > 0) {
        cell.push_str(&format!(", oldest {age}s"));
    }
    cell
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
