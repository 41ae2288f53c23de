//! How a sink's answer is judged, and when the next attempt is. Pure: the sinks report what
//! happened, `PublishEvents` acts on the verdict.
//!
//! Retries re-enqueue the outbox message with a visibility delay (the schedule), instead of
//! answering 500 and burning the host's dequeue count: the host would retry after its own
//! `visibilityTimeout` (30 s) and move the message to `-poison` after `maxDequeueCount` (5)
//! attempts, about two and a half minutes, where a sink down for an hour needs hours.

use std::time::Duration;

/// A sink's answer, or its absence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP status and the start of the body (redacted by the sink).
    Status { status: u16, body: String },
    /// No answer: a timeout, a refused or reset connection, no token.
    NoAnswer { reason: String },
    /// Not sent: the sink's secret or credential setting is unusable (an unresolved Key Vault
    /// reference right after a deploy, say). The reason names the setting, never its value.
    NotReady { reason: String },
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status { status, body } if body.is_empty() => write!(f, "{status}"),
            Self::Status { status, body } => write!(f, "{status}: {body}"),
            Self::NoAnswer { reason } => write!(f, "no answer: {reason}"),
            Self::NotReady { reason } => write!(f, "not sent, the sink is not ready: {reason}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Worth another attempt later.
    Transient,
    /// The same request will never pass: to the failed queue.
    Permanent,
    /// The webhook said 410 Gone: the endpoint is disabled (Standard Webhooks); logged, not
    /// retried, not kept as a failure.
    Disabled,
}

/// How long after the first attempt a 401/403 still counts as roles propagating: Azure says
/// a role assignment can take up to 10 minutes to take effect, longer in large tenants
/// (<https://learn.microsoft.com/azure/role-based-access-control/troubleshooting#symptom---role-assignment-changes-are-not-being-detected>).
pub const ROLE_PROPAGATION: Duration = Duration::from_secs(40 * 60);

/// The verdict on `answer`. `waited` is how long the event has been retried so far (the
/// schedule's delays up to this attempt); `propagating_auth` says whether a 401/403 may be an
/// identity's role not yet in effect (Event Grid with Entra ID), as opposed to a wrong key or
/// a webhook's own refusal.
pub fn judge(answer: &Answer, propagating_auth: bool, waited: Duration, webhook: bool) -> Verdict {
    match answer {
        // A setting the platform may yet fix (a Key Vault reference resolves, a role applies):
        // retried on the schedule, and kept as failed when it runs out.
        Answer::NoAnswer { .. } | Answer::NotReady { .. } => Verdict::Transient,
        Answer::Status { status, .. } => match *status {
            200..=299 => Verdict::Accepted,
            410 if webhook => Verdict::Disabled,
            408 | 429 | 500..=599 => Verdict::Transient,
            401 | 403 if propagating_auth && waited < ROLE_PROPAGATION => Verdict::Transient,
            _ => Verdict::Permanent,
        },
    }
}

/// The delay before attempt `attempt + 1` (0-based: `attempt` attempts made), or `None` when
/// the schedule has run out.
pub fn next_delay(schedule: &[Duration], attempts_made: u32) -> Option<Duration> {
    let index = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
    schedule.get(index).copied()
}

/// The delays waited before attempt `attempts_made + 1`'s predecessor, summed.
pub fn waited(schedule: &[Duration], attempts_made: u32) -> Duration {
    let n = usize::try_from(attempts_made.saturating_sub(1)).unwrap_or(usize::MAX);
    schedule.iter().take(n).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(s: u16) -> Answer {
        Answer::Status {
            status: s,
            body: String::new(),
        }
    }

    #[test]
    fn answers_are_judged_as_the_issue_says() {
        let zero = Duration::ZERO;
        for s in [200, 201, 202, 204] {
            assert_eq!(judge(&status(s), false, zero, true), Verdict::Accepted);
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                judge(&status(s), false, zero, false),
                Verdict::Transient,
                "{s}"
            );
        }
        for s in [400, 404, 413, 422] {
            assert_eq!(
                judge(&status(s), true, zero, true),
                Verdict::Permanent,
                "{s}"
            );
        }
        assert_eq!(judge(&status(410), false, zero, true), Verdict::Disabled);
        assert_eq!(judge(&status(410), false, zero, false), Verdict::Permanent);
        let timeout = Answer::NoAnswer {
            reason: "timed out".into(),
        };
        assert_eq!(judge(&timeout, false, zero, true), Verdict::Transient);
    }

    #[test]
    fn a_sink_not_ready_is_retried_never_refused_for_good() {
        let not_ready = Answer::NotReady {
            reason: "setting CV_WEBHOOK_SECRET is an unresolved Key Vault reference".into(),
        };
        for webhook in [true, false] {
            assert_eq!(
                judge(&not_ready, false, ROLE_PROPAGATION * 10, webhook),
                Verdict::Transient
            );
        }
        assert_eq!(
            not_ready.to_string(),
            "not sent, the sink is not ready: setting CV_WEBHOOK_SECRET is an unresolved Key Vault reference"
        );
    }

    #[test]
    fn a_401_or_403_is_transient_only_while_an_identitys_role_may_be_propagating() {
        for s in [401, 403] {
            assert_eq!(
                judge(&status(s), true, Duration::from_secs(300), false),
                Verdict::Transient
            );
            assert_eq!(
                judge(&status(s), true, ROLE_PROPAGATION, false),
                Verdict::Permanent
            );
            assert_eq!(
                judge(&status(s), false, Duration::ZERO, false),
                Verdict::Permanent,
                "a key"
            );
        }
    }

    #[test]
    fn the_schedule_is_walked_once_then_runs_out() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(300)];
        assert_eq!(next_delay(&schedule, 1), Some(Duration::from_secs(5)));
        assert_eq!(next_delay(&schedule, 2), Some(Duration::from_secs(300)));
        assert_eq!(next_delay(&schedule, 3), None);
        assert_eq!(next_delay(&[], 1), None);
        assert_eq!(waited(&schedule, 1), Duration::ZERO);
        assert_eq!(waited(&schedule, 3), Duration::from_secs(305));
    }
}
