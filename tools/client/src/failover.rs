//! Finding the node that serves, and moving to another when it stops.
//!
//! In a Peregrine cluster only the leader serves clients; the others refuse
//! every login with reason `L`, naming the leader when they know it (UDP;
//! SoupBinTCP has no room for an address). A client is given every node's
//! address for its gateway and walks them: on `L` with a hint it goes to
//! the hinted address, on `L` without one, on no answer within the login
//! timeout, or on a refused or closed connection, to the next address in
//! its list (wrapping around).
//!
//! After a failover the sessions resume exactly where the cluster is: the
//! session state (next client sequence, next reply sequence, reply log) is
//! rebuilt from the replicated log on every node, so the new leader answers
//! a login with the sequences the old one had acknowledged. The client asks
//! for the replies it has not received and resends only the messages the
//! new leader never sequenced; each message is answered exactly once. The
//! per-transport details are in [`crate::udp`] and [`crate::tcp`].

use crate::ClientError;
use std::net::SocketAddr;
use std::time::Duration;

/// When to give up on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailoverOptions {
    /// UDP: a logged-in client that hears nothing from its node (no reply,
    /// no heartbeat) for this long fails over. Keep it a few times the
    /// server's `heartbeat_interval_ms`; the client sends heartbeats of its
    /// own every third of it when it has nothing to send, so the server
    /// keeps heartbeating too.
    pub silence: Duration,
    /// A login unanswered this long at one address moves to the next (TCP:
    /// also the connect timeout).
    pub login_timeout: Duration,
}

impl Default for FailoverOptions {
    fn default() -> Self {
        FailoverOptions {
            silence: Duration::from_secs(3),
            login_timeout: Duration::from_secs(1),
        }
    }
}

/// What failovers a client went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailoverStats {
    /// Failovers started (the node went silent, closed the connection, or
    /// refused a login mid-run).
    pub failovers: u64,
    /// Failovers finished: a reply arrived from the new node.
    pub completed: u64,
    /// Logins refused `L` (not the leader).
    pub refused_not_leader: u64,
    /// Moves from one address to another while looking for the leader.
    pub address_switches: u64,
    /// Messages resent after failovers: those the new node had not
    /// sequenced.
    pub resent: u64,
    /// Time from the last reply of the old node to the first reply of the
    /// new one, ns, for the last completed failover.
    pub last_gap_ns: u64,
    /// The longest such time, ns.
    pub max_gap_ns: u64,
}

impl FailoverStats {
    /// Records a finished failover whose replies stopped at `from_ns` and
    /// resumed at `now_ns`.
    pub(crate) fn completed(&mut self, from_ns: u64, now_ns: u64) {
        let gap = now_ns.saturating_sub(from_ns);
        self.completed += 1;
        self.last_gap_ns = gap;
        self.max_gap_ns = self.max_gap_ns.max(gap);
    }
}

/// The node addresses a client knows, and the one in use.
#[derive(Clone, Debug)]
pub(crate) struct Servers {
    list: Vec<SocketAddr>,
    /// Position in `list` of the address in use (or of the address last
    /// used from the list, when a hint named one outside it).
    at: usize,
    current: SocketAddr,
}

impl Servers {
    /// `list` in order of preference; the first is used first.
    pub(crate) fn new(list: &[SocketAddr]) -> Result<Servers, ClientError> {
        let current = *list.first().ok_or(ClientError::NoServer)?;
        Ok(Servers {
            list: list.to_vec(),
            at: 0,
            current,
        })
    }

    pub(crate) fn current(&self) -> SocketAddr {
        self.current
    }

    pub(crate) fn list(&self) -> &[SocketAddr] {
        &self.list
    }

    /// Moves to the next address of the list (wrapping); returns it.
    pub(crate) fn next(&mut self) -> SocketAddr {
        self.at = (self.at + 1) % self.list.len();
        self.current = self.list[self.at];
        self.current
    }

    /// Moves to the address a refusal names (it may be outside the list).
    pub(crate) fn go_to(&mut self, addr: SocketAddr) {
        if let Some(i) = self.list.iter().position(|&a| a == addr) {
            self.at = i;
        }
        self.current = addr;
    }

    /// After a refusal `L` from the address in use: to the hinted address
    /// when there is one (and it is another), else the next one.
    pub(crate) fn after_not_leader(&mut self, hint: Option<SocketAddr>) -> SocketAddr {
        match hint.filter(|&h| h != self.current) {
            Some(h) => self.go_to(h),
            None => {
                self.next();
            }
        }
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_the_list_and_follows_hints() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let c: SocketAddr = "127.0.0.1:3".parse().unwrap();
        let outside: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(Servers::new(&[]).is_err());
        let mut s = Servers::new(&[a, b, c]).unwrap();
        assert_eq!(s.current(), a);
        assert_eq!(s.next(), b);
        assert_eq!(s.after_not_leader(None), c);
        assert_eq!(s.next(), a, "wraps");
        assert_eq!(s.after_not_leader(Some(c)), c, "hinted");
        assert_eq!(s.after_not_leader(Some(c)), a, "a hint naming itself: the next");
        assert_eq!(s.after_not_leader(Some(outside)), outside);
        assert_eq!(s.next(), b, "the list goes on from where it was");
    }
}
