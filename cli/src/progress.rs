//! Progress of long commands (import, export, demo, repair) on stderr: a bar with
//! rows/s and ETA when stderr is a terminal, plain lines otherwise (a log or a
//! pipe gets one line at most every second, and one at the end).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain lines are written.
const LINE_EVERY: Duration = Duration::from_secs(1);

pub struct Progress {
    what: String,
    total: u64,
    done: u64,
    start: Instant,
    shown: Output,
}

enum Output {
    Bar(ProgressBar),
    Lines { last: Option<Instant> },
}

impl Progress {
    /// `what` says what moves ("import person"); `total` is the row count.
    pub fn new(what: impl Into<String>, total: usize) -> Self {
        let what = what.into();
        let total = total as u64;
        let shown = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30.cyan/blue}] {human_pos}/{human_len} rows  {per_sec:.0}  ETA {eta}  ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style.with_key("per_sec", |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} rows/s", state.per_sec());
            }));
            bar.set_message(what.clone());
            Output::Bar(bar)
        } else {
            Output::Lines { last: None }
        };
        Progress { what, total, done: 0, start: Instant::now(), shown }
    }

    pub fn advance(&mut self, rows: usize) {
        self.done += rows as u64;
        match &mut self.shown {
            Output::Bar(bar) => bar.set_position(self.done),
            Output::Lines { last } => {
                if last.is_none_or(|t| t.elapsed() >= LINE_EVERY) {
                    *last = Some(Instant::now());
                    let line = self.line();
                    eprintln!("{line}");
                }
            }
        }
    }

    pub fn finish(self) {
        match &self.shown {
            Output::Bar(bar) => bar.finish(),
            Output::Lines { .. } => {
                eprintln!("{}", self.line());
                let _ = std::io::stderr().flush();
            }
        }
    }

    /// `import person: 20000/50000 rows (40%), 15321 rows/s, ETA 2s`
    fn line(&self) -> String {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-6);
        let rate = self.done as f64 / seconds;
        let percent = if self.total > 0 { 100 * self.done / self.total } else { 100 };
        let left = self.total.saturating_sub(self.done);
        let eta = if rate > 0.0 { format!("{:.0}s", left as f64 / rate) } else { "?".into() };
        format!("{}: {}/{} rows ({percent}%), {rate:.0} rows/s, ETA {eta}", self.what, self.done, self.total)
    }
}
