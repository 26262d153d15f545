//! The faults the simulation injects while they are on: crashes (and
//! immediate crash-restart bounces), restarts from disk, partitions, and
//! healing everything when the fault phase ends. Message loss, duplication
//! and delay are applied as messages are sent, in `Sim::step_once`.

use super::{Sim, StateMachine};

impl Sim {
    pub(super) fn inject_faults(&mut self) {
        let n = self.nodes.len();
        // Crash a running node.
        if self.rng.below(1000) < self.params.crash_per_mille {
            let i = self.rng.below(n as u64) as usize;
            if let Some(log) = self.nodes[i].log.take() {
                // The disk is what the store holds; Raft's unpersisted
                // memory (unstable entries, inflight state) is gone.
                self.nodes[i].disk = Some(log.store().clone());
                self.nodes[i].sm = StateMachine::default();
                self.stats.crashes += 1;
                self.log(|| format!("crash node {}", i + 1));
            }
        }
        // Crash a running node and restart it from its disk straight away.
        if self.rng.below(1000) < self.params.bounce_per_mille {
            let i = self.rng.below(n as u64) as usize;
            if let Some(log) = self.nodes[i].log.take() {
                self.nodes[i].disk = Some(log.store().clone());
                self.stats.crashes += 1;
                self.log(|| format!("bounce node {}", i + 1));
                self.restart(i);
            }
        }
        // Restart a crashed one from its disk.
        for i in 0..n {
            if self.nodes[i].log.is_none() && self.rng.percent(self.params.restart_percent) {
                self.restart(i);
            }
        }
        // Partition: isolate one node, or split minority/majority.
        if self.rng.below(1000) < self.params.partition_per_mille {
            self.stats.partitions += 1;
            if self.rng.percent(50) {
                let i = self.rng.below(n as u64) as usize;
                self.group = vec![0; n];
                self.group[i] = 1;
                self.log(|| format!("isolate node {}", i + 1));
            } else {
                let minority = n / 2;
                self.group = vec![0; n];
                let mut moved = 0;
                while moved < minority {
                    let i = self.rng.below(n as u64) as usize;
                    if self.group[i] == 0 {
                        self.group[i] = 1;
                        moved += 1;
                    }
                }
                self.log(|| format!("split {:?}", self.group));
            }
        } else if self.group.iter().any(|&g| g != 0) && self.rng.percent(self.params.heal_percent) {
            self.group = vec![0; n];
            self.log(|| "heal".into());
        }
    }

    pub(super) fn restart(&mut self, i: usize) {
        let disk = self.nodes[i].disk.take().expect("crashed node has a disk");
        let id = self.nodes[i].id;
        self.nodes[i].log = Some(self.start(id, disk));
        self.nodes[i].sm = StateMachine::default();
        self.log(|| format!("restart node {}", i + 1));
    }

    pub(super) fn heal_all(&mut self) {
        self.faults = false;
        self.group = vec![0; self.nodes.len()];
        for i in 0..self.nodes.len() {
            if self.nodes[i].log.is_none() {
                self.restart(i);
            }
        }
        self.log(|| "heal all, restart all, faults stop".into());
    }
}
