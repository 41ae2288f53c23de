//! [`Verdict`]: what one preflight check found, and what to do about a failure.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass(String),
    /// `fix` is a command or a step the user can take as it is.
    Fail {
        what: String,
        fix: String,
    },
    /// Not checked, and why.
    Skip(String),
}

impl Verdict {
    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Fail {
            what: what.into(),
            fix: fix.into(),
        }
    }

    pub fn is_fail(&self) -> bool {
        matches!(self, Self::Fail { .. })
    }
}
