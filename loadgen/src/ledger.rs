//! The ratings ledger: every rating answer is counted by what it promises (201: a new row,
//! 200: a replaced rating, 503: refused, nothing written), and the rows PostgreSQL gained over
//! the run must equal the 201s exactly. A rating that was acknowledged and then lost, or
//! refused and written anyway, shows here. A request that never left (connection refused)
//! cannot have been written; one sent without an answer (a client timeout, a reset) may or may
//! not have been, so it turns the check into a bound, and a failure.
//!
//! The arithmetic ([`Ledger::verdict`]) is pure; [`count_ratings`] is the one query.

use crate::error::LoadError;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::Connection;
use std::fmt;
use std::time::{Duration, Instant};

/// What became of one rating request, as far as its client can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingFate {
    /// An answer with this status.
    Answered(u16),
    /// Never reached the service (no connection): nothing written.
    NotSent,
    /// Sent, but no answer came (timeout, reset): written or not, unknown.
    Unknown,
}

/// Rating answers, by what they promise about the `ratings` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RatingAnswers {
    /// 201 Created: one new row.
    pub created: u64,
    /// 200 OK: an existing rating replaced, no new row.
    pub replaced: u64,
    /// 503: refused, nothing written.
    pub refused: u64,
    /// Any other status (nothing written).
    pub other: u64,
    /// Never sent (connection refused): nothing written.
    pub unsent: u64,
    /// No answer (client timeout, connection reset): written or not, unknown.
    pub unknown: u64,
}

impl RatingAnswers {
    /// Counts one request.
    pub fn record(&mut self, fate: RatingFate) {
        match fate {
            RatingFate::Answered(201) => self.created += 1,
            RatingFate::Answered(200) => self.replaced += 1,
            RatingFate::Answered(503) => self.refused += 1,
            RatingFate::Answered(_) => self.other += 1,
            RatingFate::NotSent => self.unsent += 1,
            RatingFate::Unknown => self.unknown += 1,
        }
    }

    /// Adds another worker's counts.
    pub fn merge(&mut self, other: RatingAnswers) {
        self.created += other.created;
        self.replaced += other.replaced;
        self.refused += other.refused;
        self.other += other.other;
        self.unsent += other.unsent;
        self.unknown += other.unknown;
    }

    /// Every rating request.
    pub fn total(&self) -> u64 {
        self.created + self.replaced + self.refused + self.other + self.unsent + self.unknown
    }
}

/// The `ratings` row count before and after a run, and the answers in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ledger {
    /// Rows before the first request.
    pub before: i64,
    /// Rows after the last answer, every fault restored.
    pub after: i64,
    /// The answers, warm-up included.
    pub answers: RatingAnswers,
}

/// The ledger's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verdict {
    /// Every request was answered and rows added == 201 answers.
    Exact,
    /// Every request was answered but the rows differ from the 201s: ratings acknowledged and
    /// lost (fewer) or written without a 201 (more).
    Mismatch {
        /// Rows added.
        added: i64,
        /// 201 answers.
        created: u64,
    },
    /// Some requests got no answer: rows added should be within `created..=created + unknown`.
    Unknown {
        /// Rows added.
        added: i64,
        /// 201 answers (the bound's low end).
        created: u64,
        /// Requests without an answer.
        unknown: u64,
        /// Whether `added` is within the bound.
        within: bool,
    },
}

impl Ledger {
    /// Rows added during the run.
    pub fn added(&self) -> i64 {
        self.after - self.before
    }

    /// Whether the rows added balance the 201 answers.
    pub fn verdict(&self) -> Verdict {
        let added = self.added();
        let created = self.answers.created;
        let unknown = self.answers.unknown;
        if unknown == 0 {
            if added == created as i64 {
                Verdict::Exact
            } else {
                Verdict::Mismatch { added, created }
            }
        } else {
            Verdict::Unknown {
                added,
                created,
                unknown,
                within: (created as i64..=(created + unknown) as i64).contains(&added),
            }
        }
    }

    /// Only an exact balance passes: an unknown outcome is a rating a client could not tell
    /// was kept.
    pub fn balanced(&self) -> bool {
        self.verdict() == Verdict::Exact
    }
}

/// With the rows added and the verdict, so a JSON report needs no arithmetic.
impl Serialize for Ledger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json {
            before: i64,
            after: i64,
            added: i64,
            answers: RatingAnswers,
            verdict: Verdict,
            balanced: bool,
        }
        Json {
            before: self.before,
            after: self.after,
            added: self.added(),
            answers: self.answers,
            verdict: self.verdict(),
            balanced: self.balanced(),
        }
        .serialize(serializer)
    }
}

impl fmt::Display for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.answers;
        write!(
            f,
            "ratings ledger: {} requests: {} x 201, {} x 200, {} x 503, {} other, {} not sent, {} unanswered; rows {} -> {} (+{}): ",
            a.total(),
            a.created,
            a.replaced,
            a.refused,
            a.other,
            a.unsent,
            a.unknown,
            self.before,
            self.after,
            self.added()
        )?;
        match self.verdict() {
            Verdict::Exact => write!(f, "OK, rows added = 201 answers"),
            Verdict::Mismatch { added, created } if added < created as i64 => write!(
                f,
                "MISMATCH, {} acknowledged ratings are missing",
                created as i64 - added
            ),
            Verdict::Mismatch { added, created } => write!(
                f,
                "MISMATCH, {} rows were written without a 201",
                added - created as i64
            ),
            Verdict::Unknown {
                created,
                unknown,
                within,
                ..
            } => write!(
                f,
                "UNKNOWN, {unknown} requests got no answer: expected {created} <= added <= {}, which {}",
                created + unknown,
                if within { "holds" } else { "does not hold" }
            ),
        }
    }
}

/// `SELECT count(*) FROM ratings`.
pub async fn count_ratings(url: &SecretString) -> Result<i64, LoadError> {
    let failed = |e: sqlx::Error| LoadError::Ledger(format!("reading the ratings count: {e}"));
    let mut connection = tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(url.expose_secret()),
    )
    .await
    .map_err(|_| LoadError::Ledger("PostgreSQL did not answer within 5 s".to_owned()))?
    .map_err(failed)?;
    let count = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ratings")
        .fetch_one(&mut connection)
        .await
        .map_err(failed)?;
    let _ = connection.close().await;
    Ok(count)
}

/// [`count_ratings`], retried until PostgreSQL answers (it may still be starting after a
/// fault) or `patience` has passed.
pub async fn count_when_ready(url: &SecretString, patience: Duration) -> Result<i64, LoadError> {
    let deadline = Instant::now() + patience;
    loop {
        match count_ratings(url).await {
            Ok(count) => return Ok(count),
            Err(err) if Instant::now() >= deadline => return Err(err),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(added: i64, statuses: &[Option<u16>]) -> Ledger {
        let mut answers = RatingAnswers::default();
        for status in statuses {
            answers.record(status.map_or(RatingFate::Unknown, RatingFate::Answered));
        }
        Ledger {
            before: 100_000,
            after: 100_000 + added,
            answers,
        }
    }

    #[test]
    fn answers_are_counted_by_what_they_promise() {
        let mut l = ledger(
            2,
            &[Some(201), Some(201), Some(200), Some(503), Some(500), None],
        );
        l.answers.record(RatingFate::NotSent);
        assert_eq!(
            l.answers,
            RatingAnswers {
                created: 2,
                replaced: 1,
                refused: 1,
                other: 1,
                unsent: 1,
                unknown: 1
            }
        );
        assert_eq!(l.answers.total(), 7);
        let mut sum = l.answers;
        sum.merge(l.answers);
        assert_eq!(sum.total(), 14);
    }

    #[test]
    fn requests_that_never_left_do_not_make_the_ledger_uncertain() {
        let mut l = ledger(1, &[Some(201), Some(503)]);
        l.answers.record(RatingFate::NotSent);
        assert_eq!(l.verdict(), Verdict::Exact);
    }

    #[test]
    fn rows_added_must_equal_the_201s_exactly() {
        let ok = ledger(2, &[Some(201), Some(201), Some(200), Some(503)]);
        assert_eq!(ok.verdict(), Verdict::Exact);
        assert!(ok.balanced());
        assert!(ok.to_string().contains("OK"), "{ok}");

        let lost = ledger(1, &[Some(201), Some(201)]);
        assert_eq!(
            lost.verdict(),
            Verdict::Mismatch {
                added: 1,
                created: 2
            }
        );
        assert!(
            lost.to_string()
                .contains("1 acknowledged ratings are missing")
        );
        let phantom = ledger(3, &[Some(201), Some(201), Some(503)]);
        assert!(!phantom.balanced());
        assert!(
            phantom
                .to_string()
                .contains("1 rows were written without a 201")
        );
    }

    #[test]
    fn unanswered_requests_make_a_bound_and_fail() {
        let statuses = [Some(201), None, None];
        for (added, within) in [(0, false), (1, true), (2, true), (3, true), (4, false)] {
            let l = ledger(added, &statuses);
            assert_eq!(
                l.verdict(),
                Verdict::Unknown {
                    added,
                    created: 1,
                    unknown: 2,
                    within
                },
                "{added}"
            );
            assert!(!l.balanced());
        }
        assert!(
            ledger(2, &statuses)
                .to_string()
                .contains("expected 1 <= added <= 3, which holds")
        );
    }
}
