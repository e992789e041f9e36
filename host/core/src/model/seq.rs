//! The change sequence: a position in the store's order of changes to runs.
//!
//! Every write that changes a run (a post or patch that changed it, new
//! feedback on it) stamps the run with a new [`ChangeSeq`]; a rule's
//! watermark is one too, and its window is the runs stamped past it. The
//! store chooses what a position is made of, so the type is opaque: two
//! parts compared in order. The embedded store counts with one writer, so
//! its first part is always 0 and its second is the counter; a store with
//! concurrent writers can put the writing transaction's id first, so that a
//! reader below the oldest running transaction never skips a write that
//! commits later (see the store contract in `runhook-store`).

/// A position in the store's change order. Only a store makes one
/// ([`ChangeSeq::from_parts`]); everyone else compares them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChangeSeq {
    major: i64,
    minor: i64,
}

impl ChangeSeq {
    /// Before every change (a store's first position is after it).
    pub const START: ChangeSeq = ChangeSeq { major: 0, minor: 0 };

    /// After every position (an open end).
    pub const END: ChangeSeq = ChangeSeq { major: i64::MAX, minor: i64::MAX };

    /// The position a store encodes as `(major, minor)`; positions compare
    /// by `major`, then `minor`.
    pub fn from_parts(major: i64, minor: i64) -> Self {
        Self { major, minor }
    }

    /// The two parts, for the store that made the position.
    pub fn parts(self) -> (i64, i64) {
        (self.major, self.minor)
    }
}

impl std::fmt::Display for ChangeSeq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}
