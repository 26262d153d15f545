//! Leadership changes as values, so the busy loop can hand them to a logger
//! (or a counter) off the hot path instead of formatting text itself.

/// A node's Raft role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Following a leader, or waiting for one.
    Follower,
    /// Asking whether it could win an election (pre-vote), without bumping
    /// the term.
    PreCandidate,
    /// Campaigning in a new term.
    Candidate,
    /// Leading: the only node that may sequence.
    Leader,
}

impl From<raft::StateRole> for Role {
    fn from(r: raft::StateRole) -> Role {
        match r {
            raft::StateRole::Follower => Role::Follower,
            raft::StateRole::PreCandidate => Role::PreCandidate,
            raft::StateRole::Candidate => Role::Candidate,
            raft::StateRole::Leader => Role::Leader,
        }
    }
}

/// Why the role or the known leader changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeReason {
    /// This node won an election and now leads.
    WonElection,
    /// This node's election timer fired and it began (pre-)campaigning.
    ElectionTimeout,
    /// This node led and stepped down: it saw a higher term or lost
    /// contact with a majority (check-quorum).
    SteppedDown,
    /// A (new) leader was heard from.
    FollowingNewLeader,
    /// This node's campaign ended without a winner it knows of (it saw a
    /// higher term or was refused), and it went back to following.
    ElectionLost,
    /// The leader this node followed is no longer known (a higher term
    /// started without a winner yet).
    LeaderLost,
}

/// One change of role or leader, reported by [`crate::ReplicatedLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeadershipEvent {
    /// The term in which the change happened.
    pub term: u64,
    /// The role before.
    pub from: Role,
    /// The role after.
    pub to: Role,
    /// The leader now known, if any.
    pub leader: Option<u64>,
    /// Why.
    pub reason: ChangeReason,
}

impl LeadershipEvent {
    /// Classifies a transition from `(from, old_leader)` to `(to, leader)`.
    pub(crate) fn classify(
        term: u64,
        from: Role,
        old_leader: Option<u64>,
        to: Role,
        leader: Option<u64>,
    ) -> LeadershipEvent {
        let reason = match (from, to) {
            (_, Role::Leader) => ChangeReason::WonElection,
            (_, Role::PreCandidate | Role::Candidate) => ChangeReason::ElectionTimeout,
            (Role::Leader, _) => ChangeReason::SteppedDown,
            _ if leader.is_some() && leader != old_leader => ChangeReason::FollowingNewLeader,
            (Role::PreCandidate | Role::Candidate, _) => ChangeReason::ElectionLost,
            _ => ChangeReason::LeaderLost,
        };
        LeadershipEvent {
            term,
            from,
            to,
            leader,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons() {
        let c = |from, old, to, new| LeadershipEvent::classify(3, from, old, to, new).reason;
        assert_eq!(
            c(Role::Candidate, None, Role::Leader, Some(1)),
            ChangeReason::WonElection
        );
        assert_eq!(
            c(Role::Follower, Some(2), Role::PreCandidate, None),
            ChangeReason::ElectionTimeout
        );
        assert_eq!(
            c(Role::Leader, Some(1), Role::Follower, None),
            ChangeReason::SteppedDown
        );
        assert_eq!(
            c(Role::Leader, Some(1), Role::Follower, Some(2)),
            ChangeReason::SteppedDown
        );
        assert_eq!(
            c(Role::Candidate, None, Role::Follower, Some(2)),
            ChangeReason::FollowingNewLeader
        );
        assert_eq!(
            c(Role::Follower, Some(2), Role::Follower, Some(3)),
            ChangeReason::FollowingNewLeader
        );
        assert_eq!(
            c(Role::PreCandidate, None, Role::Follower, None),
            ChangeReason::ElectionLost
        );
        assert_eq!(
            c(Role::Follower, Some(2), Role::Follower, None),
            ChangeReason::LeaderLost
        );
    }
}
