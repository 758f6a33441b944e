//! Waiting for something that is not there yet: full-jitter back-off, the retry loop to a
//! deadline, and what a long wait says while it lasts.
//!
//! Metadata (Rancher's), peers (`--wait-peers`) and Docker's DNS records (Swarm, Compose) are all
//! often missing in a container's first moments, so every source and discovery wait the same way.
//! What a wait logs: the first failure and every error not seen before in this wait are warnings;
//! while the same errors repeat, one progress line every [`PROGRESS_EVERY`] (attempts, elapsed,
//! last error). Each attempt is a debug line. A minute of waiting is a dozen lines, not three
//! hundred.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::anyhow;

use crate::exit::{Exit, Fail};

/// How often a wait that keeps failing the same way says that it still waits.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Why one attempt failed: decides between exit 69 and 65 at the deadline.
#[derive(Debug)]
pub enum AttemptError {
    /// Nothing usable came back (network, timeout, 404, 5xx): retry; 69 at the deadline.
    Unavailable(anyhow::Error),
    /// The host name did not resolve: retry (also on the link-local address with the default URL).
    NameNotResolved(anyhow::Error),
    /// An answer came, but its content is not valid: retry; 65 at the deadline.
    Invalid(anyhow::Error),
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttemptError::Unavailable(e) | AttemptError::NameNotResolved(e) | AttemptError::Invalid(e) => {
                write!(f, "{e:#}")
            }
        }
    }
}

/// Full-jitter exponential back-off: a delay drawn from [0, min(cap, base * 2^n)].
///
/// Full jitter spreads a hundred containers that start together over the whole window instead of
/// retrying in lock-step. The 200 ms cap keeps a service that becomes ready in use within 250 ms
/// (docs/spec.md section 13): the longest wait after T is one whole delay, then a request and the exec,
/// which need the remaining 50 ms. A 250 ms cap would leave them nothing.
#[derive(Debug)]
pub struct Backoff {
    attempt: u32,
    state: u64,
}

impl Backoff {
    pub const BASE: Duration = Duration::from_millis(50);
    pub const CAP: Duration = Duration::from_millis(200);

    pub fn new() -> Self {
        // Seeded from the clock and the pid: containers started in the same millisecond still differ.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Backoff::with_seed(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn with_seed(seed: u64) -> Self {
        Backoff { attempt: 0, state: seed | 1 }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::BASE.saturating_mul(1 << self.attempt.min(16)).min(Self::CAP);
        self.attempt += 1;
        // xorshift64*: plenty for jitter, and no dependency.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let random = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let micros = ceiling.as_micros() as u64;
        Duration::from_micros(random % (micros + 1))
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// What a failed attempt is worth saying, at which level.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The first failure, or an error not seen before in this wait.
    Warning(String),
    /// Still waiting: the same errors again, [`PROGRESS_EVERY`] after the last line.
    Progress(String),
}

/// Decides which failures of one wait are logged (pure: the time is given).
#[derive(Debug)]
pub struct Reporter {
    what: String,
    seen: HashSet<String>,
    last_line: Option<Duration>,
}

impl Reporter {
    /// At most this many different errors are remembered; past it, every new one warns anyway.
    const MEMORY: usize = 32;

    pub fn new(what: &str) -> Self {
        Reporter { what: what.to_string(), seen: HashSet::new(), last_line: None }
    }

    /// Attempt `number` failed with `error`, `elapsed` after the start.
    pub fn failed(&mut self, number: u32, elapsed: Duration, error: &str) -> Option<Line> {
        let secs = elapsed.as_secs_f64();
        if !self.seen.contains(error) {
            if self.seen.len() < Self::MEMORY {
                self.seen.insert(error.to_string());
            }
            self.last_line = Some(elapsed);
            return Some(Line::Warning(format!("{} attempt {number} failed after {secs:.1}s: {error}", self.what)));
        }
        match self.last_line {
            Some(last) if elapsed.saturating_sub(last) < PROGRESS_EVERY => None,
            _ => {
                self.last_line = Some(elapsed);
                Some(Line::Progress(format!(
                    "still waiting for {}: {number} attempts in {secs:.1}s; last error: {error}",
                    self.what
                )))
            }
        }
    }
}

/// Runs `attempt` with the same back-off until it succeeds or `end` passes, then gives its last
/// error back. Quiet (each failure is a debug line): for detection's bounded tries, where giving
/// up is an answer ("not this platform"), not a failure of the boot.
pub fn within<T>(
    what: &str,
    end: Instant,
    mut attempt: impl FnMut() -> Result<T, AttemptError>,
) -> Result<T, AttemptError> {
    let mut backoff = Backoff::new();
    loop {
        let error = match attempt() {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let now = Instant::now();
        if now >= end {
            return Err(error);
        }
        log::debug!("{what}: {error}; asking again");
        std::thread::sleep(backoff.next_delay().min(end - now));
    }
}

/// Runs `attempt` until it succeeds or the deadline passes, saying what [`Reporter`] decides.
///
/// `what` names the thing being waited for ("metadata", "peers"); the attempt's error names the
/// URL or DNS name. At the deadline the exit is 65 if the last answer was invalid, else 69.
pub fn retry<T>(
    what: &str,
    started: Instant,
    deadline: Instant,
    mut attempt: impl FnMut(u32) -> Result<T, AttemptError>,
) -> Result<T, Fail> {
    let mut backoff = Backoff::new();
    let mut reporter = Reporter::new(what);
    let mut number = 0;
    loop {
        number += 1;
        let error = match attempt(number) {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        let elapsed = started.elapsed();
        let now = Instant::now();
        if now >= deadline {
            let exit = if matches!(error, AttemptError::Invalid(_)) { Exit::DataErr } else { Exit::Unavailable };
            return Err(Fail::new(
                exit,
                anyhow!(
                    "cannot get {what}: gave up after {number} attempts in {:.1}s; last error: {error}",
                    elapsed.as_secs_f64()
                ),
            ));
        }
        let text = error.to_string();
        log::debug!("{what} attempt {number} failed after {:.3}s: {text}", elapsed.as_secs_f64());
        match reporter.failed(number, elapsed, &text) {
            Some(Line::Warning(line)) => log::warn!("{line}"),
            Some(Line::Progress(line)) => log::info!("{line}"),
            None => {}
        }
        std::thread::sleep(backoff.next_delay().min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_and_capped() {
        let mut a = Backoff::with_seed(1);
        let mut b = Backoff::with_seed(2);
        let da: Vec<_> = (0..20).map(|_| a.next_delay()).collect();
        let db: Vec<_> = (0..20).map(|_| b.next_delay()).collect();
        assert_ne!(da, db, "two seeds must not retry in lock-step");
        assert!(da.iter().chain(&db).all(|d| *d <= Backoff::CAP));
        assert!(da[0] <= Backoff::BASE);
        // Over many draws the delays spread across the window rather than clustering at one end.
        let mut c = Backoff::with_seed(3);
        let late: Vec<_> = (0..1000).map(|_| c.next_delay()).skip(10).collect();
        let below_half = late.iter().filter(|d| **d < Backoff::CAP / 2).count();
        assert!((300..700).contains(&below_half), "{below_half}");
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_failure_and_each_new_error_warn_the_rest_is_quiet() {
        let mut r = Reporter::new("metadata");
        assert_eq!(
            r.failed(1, ms(10), "HTTP 404"),
            Some(Line::Warning("metadata attempt 1 failed after 0.0s: HTTP 404".into()))
        );
        for (n, t) in (2..40).zip((100..).step_by(100)) {
            assert_eq!(r.failed(n, ms(t), "HTTP 404"), None, "attempt {n} at {t} ms");
        }
        assert!(matches!(r.failed(40, ms(4100), "HTTP 503"), Some(Line::Warning(w)) if w.contains("attempt 40")));
        // An error seen before, back again, is not news.
        assert_eq!(r.failed(41, ms(4200), "HTTP 404"), None);
    }

    #[test]
    fn a_progress_line_every_five_seconds_of_the_same_error() {
        let mut r = Reporter::new("peers");
        let lines: Vec<(u64, Line)> = (1..=300u32)
            .filter_map(|n| {
                let t = u64::from(n) * 50; // an attempt every 50 ms for 15 s
                r.failed(n, ms(t), "found 0 of 2 peers for web").map(|line| (t, line))
            })
            .collect();
        let times: Vec<u64> = lines.iter().map(|(t, _)| *t).collect();
        assert_eq!(times, [50, 5050, 10050], "{lines:?}");
        assert!(matches!(&lines[0].1, Line::Warning(_)));
        assert_eq!(
            lines[1].1,
            Line::Progress(
                "still waiting for peers: 101 attempts in 5.0s; last error: found 0 of 2 peers for web".into()
            )
        );
    }

    #[test]
    fn retry_gives_up_at_the_deadline_with_the_right_code() {
        let start = Instant::now();
        let deadline = start + Duration::from_millis(200);
        let fail = retry("x", start, deadline, |_| -> Result<(), _> { Err(AttemptError::Invalid(anyhow!("bad"))) })
            .unwrap_err();
        assert_eq!(fail.exit, Exit::DataErr);
        let fail = retry("thing", start, Instant::now(), |_| -> Result<(), _> {
            Err(AttemptError::Unavailable(anyhow!("down")))
        })
        .unwrap_err();
        assert_eq!(fail.exit, Exit::Unavailable);
        assert!(fail.to_string().contains("cannot get thing: gave up after 1 attempts"), "{fail}");
        assert!(fail.to_string().contains("last error: down"));
    }
}
