//! Several servers' `shared` loops polled by one thread.
//!
//! Why: a cluster of three nodes measured on a machine with fewer cores
//! than nodes otherwise measures the scheduler. When each node has a thread
//! of its own on the same core, a replication round trip waits for the
//! kernel to switch to a follower's thread and back (tens of
//! microseconds), which says nothing about what replication costs. With a
//! colocation, one pinned thread polls every node's gateways and stage in
//! turn, as the `shared` layout does for one server's gateways and
//! sequencer: nothing blocks, nothing is switched, and a round trip between
//! nodes costs the software and the loopback hop only.
//!
//! For benchmarks and tests on one host: a colocated node shares its
//! thread's fate (one stalled loop stalls all), which no deployment wants.
//! Everything else about the nodes is unchanged: each keeps its own ports,
//! journal, Raft transport, counters file and supervisor (which rebuilds an
//! incarnation after a step-down and hands the new loop to the same thread).

use crate::idle::{IdleKind, IdleStrategy, Idler};
use crate::pinning::pin_current;
use crate::runtime::RunError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One loop a colocation thread polls.
pub(crate) trait ColocatedUnit: Send {
    /// One round: the work done, or `None` when the loop is over.
    fn round(&mut self) -> Option<usize>;
    /// Ends the loop (drains, reports to whoever waits for it).
    fn finish(&mut self);
}

/// What the thread and the servers share.
struct Shared {
    /// Loops handed over and not yet picked up (the lock is taken when a
    /// loop is added, and by the thread only when `pending` says so).
    inbox: Mutex<Vec<Box<dyn ColocatedUnit>>>,
    pending: AtomicBool,
    stop: AtomicBool,
}

/// A thread that polls the `shared` loops of every server started with its
/// [`handle`](Colocation::handle) in
/// [`RuntimeConfig::colocation`](crate::runtime::RuntimeConfig::colocation)
/// (for `serve::start`: [`start_colocated`](crate::serve::start_colocated)).
/// Dropping it stops the thread once the loops it runs have ended: stop
/// the servers first.
pub struct Colocation {
    shared: Arc<Shared>,
    join: Option<JoinHandle<()>>,
}

/// Where a server hands its loop: cheap to clone, one per server.
#[derive(Clone)]
pub struct ColocationHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ColocationHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ColocationHandle")
    }
}

impl Colocation {
    /// Starts the thread, pinned to `core` (unpinned if `None`). Between
    /// rounds it spins while any loop did work, and pauses; with no loop
    /// to run it sleeps 1 ms at a time.
    pub fn start(core: Option<usize>) -> Result<Colocation, RunError> {
        if let Some(c) = core {
            crate::pinning::check_cores(&[c])?;
        }
        let shared = Arc::new(Shared {
            inbox: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let join = std::thread::Builder::new()
            .name("peregrine-coloc".into())
            .spawn(move || {
                if pin_current(core).is_err() {
                    tracing::warn!(?core, "colocation thread not pinned");
                }
                run(&s);
            })
            .map_err(|e| RunError::Thread(e.to_string()))?;
        Ok(Colocation {
            shared,
            join: Some(join),
        })
    }

    /// What servers are given to run here.
    pub fn handle(&self) -> ColocationHandle {
        ColocationHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl ColocationHandle {
    /// Hands `unit` to the thread; it runs from the thread's next round.
    pub(crate) fn add(&self, unit: Box<dyn ColocatedUnit>) {
        let mut inbox = self.shared.inbox.lock().unwrap_or_else(|e| e.into_inner());
        inbox.push(unit);
        self.shared.pending.store(true, Ordering::Release);
    }
}

impl Drop for Colocation {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The thread: every loop one round in turn, until stopped with none left.
fn run(s: &Shared) {
    let mut units: Vec<Box<dyn ColocatedUnit>> = Vec::new();
    let mut idle = Idler::new(IdleKind::Spin);
    loop {
        if s.pending.load(Ordering::Acquire) {
            let mut inbox = s.inbox.lock().unwrap_or_else(|e| e.into_inner());
            units.append(&mut inbox);
            s.pending.store(false, Ordering::Release);
        }
        if units.is_empty() {
            if s.stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let mut work = 0;
        let mut i = 0;
        while i < units.len() {
            match units[i].round() {
                Some(w) => {
                    work += w;
                    i += 1;
                }
                None => {
                    let mut done = units.swap_remove(i);
                    done.finish();
                }
            }
        }
        idle.idle(work);
    }
}
