//! The invariants, checked after every step and at the end of a run, and
//! the ground truth they are checked against.

use super::state_machine::{RecordId, StateMachine};
use super::{fail, Sim};
use peregrine_cluster::CommittedEntry;
use peregrine_cluster::Role;
use std::collections::HashSet;

impl Sim {
    /// Acknowledges proposals that committed (after checking they are on a
    /// majority's disk) and forgets the ones a new leader overwrote.
    pub(super) fn resolve_inflight(&mut self) -> Result<(), String> {
        let majority = self.nodes.len() / 2 + 1;
        let mut k = 0;
        while k < self.inflight.len() {
            let at = self.inflight[k].at;
            let mut verdict = None;
            for n in &self.nodes {
                let Some(log) = &n.log else { continue };
                if log.commit_index() >= at.index {
                    if let Some(term) = log.term_at(at.index) {
                        verdict = Some(term == at.term);
                        break;
                    }
                }
            }
            match verdict {
                Some(true) => {
                    let on_disk = self
                        .nodes
                        .iter()
                        .filter(|n| n.store().entry(at.index).is_some_and(|e| e.term == at.term))
                        .count();
                    if on_disk < majority {
                        return fail(
                            self.seed,
                            self.step,
                            format!("acknowledged entry {at:?} is on {on_disk} disks, fewer than a majority"),
                        );
                    }
                    let done = self.inflight.swap_remove(k);
                    for r in done.records {
                        let c = &mut self.clients[r.session as usize - 1];
                        c.pending.retain(|&p| p != r);
                    }
                }
                Some(false) => {
                    self.inflight.swap_remove(k);
                }
                None => k += 1,
            }
        }
        Ok(())
    }

    pub(super) fn check_invariants(&mut self) -> Result<(), String> {
        let (seed, step) = (self.seed, self.step);
        // At most one leader per term.
        for n in &self.nodes {
            let Some(log) = &n.log else { continue };
            if log.role() == Role::Leader {
                let prior = *self.leaders.entry(log.term()).or_insert(n.id);
                if prior != n.id {
                    return fail(
                        seed,
                        step,
                        format!("term {} has leaders {prior} and {}", log.term(), n.id),
                    );
                }
            }
        }
        // A committed entry never changes on any disk: re-check what was
        // rewritten, then extend the checked prefix up to the disk's own
        // commit index.
        for n in &mut self.nodes {
            let store = match (&n.log, &n.disk) {
                (Some(log), _) => log.store(),
                (None, Some(disk)) => disk,
                (None, None) => unreachable!(),
            };
            let mut from = n.checked_upto + 1;
            if let Some(w) = store.take_lowest_written() {
                from = from.min(w);
            }
            let upto = store
                .hard_state()
                .commit
                .min(self.committed.len() as u64)
                .min(store.last());
            for index in from..=upto.max(n.checked_upto) {
                let Some(e) = store.entry(index) else {
                    return fail(
                        seed,
                        step,
                        format!("node {}: committed entry {index} missing from disk", n.id),
                    );
                };
                let (term, data) = &self.committed[index as usize - 1];
                if e.term != *term || e.data.as_ref() != data.as_slice() {
                    return fail(
                        seed,
                        step,
                        format!(
                            "node {}: committed entry {index} changed (term {} vs {term})",
                            n.id, e.term
                        ),
                    );
                }
            }
            n.checked_upto = n.checked_upto.max(upto);
        }
        Ok(())
    }

    /// Everything sent is applied everywhere and nothing is in flight.
    pub(super) fn quiescent(&self) -> bool {
        let Some(l) = self.leader() else { return false };
        let commit = self.nodes[l].log.as_ref().map_or(0, |log| log.commit_index());
        self.clients.iter().all(|c| c.pending.is_empty())
            && self.global.len() as u64 == self.sent
            && self.nodes.iter().all(|n| {
                n.log
                    .as_ref()
                    .is_some_and(|log| log.applied_index() == commit && log.commit_index() == commit)
            })
    }

    pub(super) fn final_checks(&self) -> Result<(), String> {
        let (seed, step) = (self.seed, self.step);
        // Exactly once: every record sent has exactly one global sequence.
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.global {
            if !seen.insert(*r) {
                return fail(seed, step, format!("{r:?} sequenced twice"));
            }
        }
        for c in &self.clients {
            for s in 1..c.next_seq {
                let id = RecordId {
                    session: c.session,
                    client_seq: s,
                };
                if !seen.contains(&id) {
                    return fail(seed, step, format!("{id:?} was sent but never sequenced"));
                }
            }
        }
        for n in &self.nodes {
            if n.sm.assigned != self.global {
                return fail(seed, step, format!("node {} sequenced a different stream", n.id));
            }
            if n.sm.hash != self.hash_at[n.sm.applied_index as usize - 1] {
                return fail(seed, step, format!("node {} ends with a different hash", n.id));
            }
        }
        Ok(())
    }
}

/// Applies one committed entry to a node's state machine, checking it
/// against the ground truth: the same entry at the same index everywhere,
/// gap-free indexes, the same global sequence for the same record, the same
/// hash after the same index.
pub(super) fn apply_checked(
    sm: &mut StateMachine,
    committed: &mut Vec<(u64, Vec<u8>)>,
    hash_at: &mut Vec<u64>,
    global: &mut Vec<RecordId>,
    global_seen: &mut HashSet<RecordId>,
    e: CommittedEntry<'_>,
) -> Result<(), String> {
    let i = e.index as usize - 1;
    if i < committed.len() {
        let (term, data) = &committed[i];
        if *term != e.term || data.as_slice() != e.data {
            return Err(format!(
                "committed entry {} differs between nodes (term {} vs {term})",
                e.index, e.term
            ));
        }
    } else if i == committed.len() {
        committed.push((e.term, e.data.to_vec()));
    } else {
        return Err(format!(
            "entry {} applied before entry {}",
            e.index,
            committed.len() + 1
        ));
    }
    for (g, id) in sm.apply(e.index, e.data)? {
        let g = g as usize - 1;
        if g < global.len() {
            if global[g] != id {
                return Err(format!(
                    "global sequence {} is {id:?} here, {:?} elsewhere",
                    g + 1,
                    global[g]
                ));
            }
        } else if g == global.len() {
            if !global_seen.insert(id) {
                return Err(format!(
                    "{id:?} sequenced twice: global {} and again {}",
                    global.iter().position(|r| *r == id).unwrap_or(0) + 1,
                    g + 1
                ));
            }
            global.push(id);
        } else {
            return Err(format!("global sequence {} skipped", global.len() + 1));
        }
    }
    if i < hash_at.len() {
        if hash_at[i] != sm.hash {
            return Err(format!("state hash differs at applied index {}", e.index));
        }
    } else {
        hash_at.push(sm.hash);
    }
    Ok(())
}
