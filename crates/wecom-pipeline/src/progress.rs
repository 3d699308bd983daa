//! The progress line: rewritten on stderr once a second while a run or a replay works, when stderr is a
//! terminal (quiet otherwise).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::ops::{Probe, ProbeCounts};
use crate::scope::ProbeList;

/// A run's line: items, rate, committed seq, dead letters, and whether it is caught up.
pub(crate) async fn run_progress(probe: Arc<Probe>, stop: CancellationToken) {
    progress_line(stop, |secs| {
        let c = probe.counts();
        let state = if c.caught_up {
            "caught up".to_string()
        } else {
            format!("{} seqs in flight", c.newest.saturating_sub(c.committed))
        };
        format!(
            "{} items ({:.0}/s), committed seq {}, dead letters {}, {state}",
            c.done(),
            c.done() as f64 / secs,
            c.committed,
            c.dead_letters,
        )
    })
    .await;
}

/// A replay's line, summed over its runs (one per room), with an ETA when it has a stop seq.
pub(crate) async fn replay_progress(
    probes: ProbeList,
    to_seq: Option<u64>,
    from_seq: u64,
    stop: CancellationToken,
) {
    progress_line(stop, |secs| {
        let counts: Vec<ProbeCounts> = probes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|p| p.counts())
            .collect();
        let done: u64 = counts.iter().map(ProbeCounts::done).sum();
        let reached = counts.iter().map(|c| c.committed).max().unwrap_or(0);
        let eta = match to_seq {
            Some(to) if reached > from_seq => {
                let rate = (reached - from_seq) as f64 / secs;
                format!(
                    ", ETA {:.0}s",
                    to.saturating_sub(reached) as f64 / rate.max(1e-9)
                )
            }
            _ => String::new(),
        };
        format!(
            "replay: {done} items ({:.0}/s), seq reached {reached}{}{eta}",
            done as f64 / secs,
            to_seq.map_or(String::new(), |t| format!(" of {t}")),
        )
    })
    .await;
}

/// Rewrites one status line on stderr every second until `stop`, when stderr is a terminal (quiet
/// otherwise); `line` gets the seconds since the start.
async fn progress_line(stop: CancellationToken, line: impl Fn(f64) -> String) {
    use std::io::{IsTerminal, Write};
    if !std::io::stderr().is_terminal() {
        return;
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            () = stop.cancelled() => break,
        }
        let text = line(started.elapsed().as_secs_f64().max(0.001));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{text}    ");
        let _ = err.flush();
    }
    eprintln!();
}
