//! A hook between the UDP client and its socket: every datagram sent and
//! received passes through a [`Link`], which may hold, drop or copy it.
//! The default, [`NoLink`], passes nothing through and costs nothing; test
//! and load tools plug in a lossy link to inject faults without a relay.

use peregrine_netio::PacketBatch;

/// Which way a datagram travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Up = 0,
    /// Server to client.
    Down = 1,
}

/// Something datagrams pass through on their way to and from the socket.
pub trait Link {
    /// False for a link that is not there: the client then uses its
    /// batches directly.
    fn active(&self) -> bool {
        true
    }
    /// Passes every datagram of `from` travelling in `dir` into `to`
    /// (cleared first), at `now_ns`. `to` has room for twice `from` plus
    /// one. Called with an empty `from` to let out what the link holds.
    fn pass(&mut self, dir: Direction, from: &PacketBatch, to: &mut PacketBatch, now_ns: u64);
    /// True when the link holds a datagram back in direction `dir`.
    fn holds(&self, dir: Direction) -> bool;
}

/// No link: datagrams go straight to and from the socket.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLink;

impl Link for NoLink {
    fn active(&self) -> bool {
        false
    }
    fn pass(&mut self, _dir: Direction, _from: &PacketBatch, to: &mut PacketBatch, _now_ns: u64) {
        to.clear();
    }
    fn holds(&self, _dir: Direction) -> bool {
        false
    }
}

impl<L: Link> Link for Option<L> {
    fn active(&self) -> bool {
        self.as_ref().is_some_and(|l| l.active())
    }
    fn pass(&mut self, dir: Direction, from: &PacketBatch, to: &mut PacketBatch, now_ns: u64) {
        match self {
            Some(l) => l.pass(dir, from, to, now_ns),
            None => to.clear(),
        }
    }
    fn holds(&self, dir: Direction) -> bool {
        self.as_ref().is_some_and(|l| l.holds(dir))
    }
}
