//! How a plugin call failed, as the pipeline applies the plugin's policy
//! to it and the admin API counts it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Trap,
    Deadline,
    Memory,
    BadOutput,
    Instantiate,
    /// The plugin's own code failed and its SDK reported it (an exception
    /// caught), without a trap.
    Reported,
    /// Not called: the plugin keeps failing, and no new instance is made
    /// for it for a while (see `backoff`).
    Backoff,
}

impl FailureKind {
    pub const ALL: [FailureKind; 7] = [
        FailureKind::Trap,
        FailureKind::Deadline,
        FailureKind::Memory,
        FailureKind::BadOutput,
        FailureKind::Instantiate,
        FailureKind::Reported,
        FailureKind::Backoff,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::Deadline => "deadline",
            FailureKind::Memory => "memory",
            FailureKind::BadOutput => "bad-output",
            FailureKind::Instantiate => "instantiate",
            FailureKind::Reported => "reported",
            FailureKind::Backoff => "backoff",
        }
    }
}

#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub detail: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

impl Failure {
    pub fn bad_output(detail: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::BadOutput,
            detail: detail.into(),
        }
    }
}
