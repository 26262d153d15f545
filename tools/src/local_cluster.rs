//! A cluster of in-process server nodes on loopback, for the cluster bench
//! and the end-to-end tests: each node is a real server (own journal,
//! counters file, Raft over TCP, clients over UDP/TCP), all in this
//! process.
//!
//! Ports are found free by binding port 0 and releasing it: another process
//! could take one in between, which fails the start loudly, never wrongly.

use anyhow::Context;
use peregrine_cluster::{AckLevel, ClusterConfig, MemberConfig};
use peregrine_server::cluster_status::NodeStatus;
use peregrine_server::config::ServeConfig;
use peregrine_server::counters_file::read_counters;
use peregrine_server::serve::{self as server, ServerHandle};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Free loopback ports.
fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let ls = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    ls.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// In-process cluster nodes sharing one work directory.
pub struct LocalCluster {
    dir: PathBuf,
    /// Each node's configuration (node `i` has id `i + 1`).
    pub configs: Vec<ServeConfig>,
    nodes: Vec<Option<ServerHandle>>,
    /// When set, every node's loop runs on this one thread (declared after
    /// `nodes`: the nodes stop first).
    colocation: Option<peregrine_server::colocation::Colocation>,
}

impl LocalCluster {
    /// Starts `n` nodes (3 or 5) from `base` (its listen addresses are
    /// replaced: each node gets one UDP and one TCP address of its own),
    /// with journals and counters files under a fresh directory named after
    /// `name`, acknowledging at `ack`.
    pub fn start(name: &str, n: usize, base: &ServeConfig, ack: AckLevel) -> anyhow::Result<LocalCluster> {
        Self::start_with(name, n, base, ack, None)
    }

    /// [`start`](Self::start), with every node's loop polled in turn by one
    /// thread pinned to `base`'s first core (see
    /// [`peregrine_server::colocation`]): replication measured without the
    /// scheduler between the nodes.
    pub fn start_colocated(
        name: &str,
        n: usize,
        base: &ServeConfig,
        ack: AckLevel,
    ) -> anyhow::Result<LocalCluster> {
        let c = peregrine_server::colocation::Colocation::start(base.cores.first().copied())?;
        Self::start_with(name, n, base, ack, Some(c))
    }

    fn start_with(
        name: &str,
        n: usize,
        base: &ServeConfig,
        ack: AckLevel,
        colocation: Option<peregrine_server::colocation::Colocation>,
    ) -> anyhow::Result<LocalCluster> {
        let dir = std::env::temp_dir().join(format!("peregrine-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let ports = free_ports(3 * n)?;
        let lo = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let members: Vec<MemberConfig> = (0..n)
            .map(|i| MemberConfig {
                id: i as u64 + 1,
                raft: lo(ports[i]),
                udp: vec![lo(ports[n + i])],
                tcp: vec![lo(ports[2 * n + i])],
            })
            .collect();
        let configs = (0..n)
            .map(|i| {
                let mut cluster = base
                    .cluster
                    .clone()
                    .unwrap_or_else(|| ClusterConfig::new(1, Vec::new()));
                cluster.node_id = i as u64 + 1;
                cluster.members = members.clone();
                cluster.ack = ack;
                ServeConfig {
                    udp: Vec::new(),
                    tcp: Vec::new(),
                    journal: Some(dir.join(format!("node{}", i + 1))),
                    counters_file: Some(dir.join(format!("node{}.stats", i + 1))),
                    cluster: Some(cluster),
                    ..base.clone()
                }
            })
            .collect();
        let mut c = LocalCluster {
            dir,
            configs,
            nodes: (0..n).map(|_| None).collect(),
            colocation,
        };
        for i in 0..n {
            c.start_node(i)?;
        }
        Ok(c)
    }

    /// (Re)starts node `i` on its journal.
    pub fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let h = match &self.colocation {
            Some(c) => server::start_colocated(&self.configs[i], &c.handle()),
            None => server::start(&self.configs[i]),
        }
        .with_context(|| format!("starting node {}", i + 1))?;
        self.nodes[i] = Some(h);
        Ok(())
    }

    /// Stops node `i` (as a crash looks to the others: it just goes away).
    pub fn stop_node(&mut self, i: usize) {
        if self.nodes[i].is_none() {
            return;
        }
        match self.stop_node_report(i) {
            Err(e) => eprintln!("{e:#}"),
            Ok(report) => {
                if let Some(f) = report.failure {
                    eprintln!("node {} had stopped: {f}", i + 1);
                }
            }
        }
    }

    /// Stops node `i` and returns its final report (its feed's counters
    /// among them); an error if it was not running or had failed.
    pub fn stop_node_report(&mut self, i: usize) -> anyhow::Result<peregrine_server::runtime::ServerReport> {
        let h = self.nodes[i]
            .take()
            .with_context(|| format!("node {} is not running", i + 1))?;
        let (report, _) = h.stop().with_context(|| format!("node {} had stopped", i + 1))?;
        Ok(report)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: a cluster has nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s client-facing UDP address.
    pub fn udp(&self, i: usize) -> SocketAddr {
        self.member(i).udp[0]
    }

    /// Node `i`'s client-facing TCP address.
    pub fn tcp(&self, i: usize) -> SocketAddr {
        self.member(i).tcp[0]
    }

    fn member(&self, i: usize) -> &MemberConfig {
        let c = self.configs[i]
            .cluster
            .as_ref()
            .expect("cluster nodes have [cluster]");
        &c.members[i]
    }

    /// Node `i`'s journal directory (its Raft log's records).
    pub fn journal_dir(&self, i: usize) -> PathBuf {
        self.configs[i]
            .journal
            .as_ref()
            .expect("cluster nodes have a journal")
            .join("journal")
    }

    /// Node `i`'s status from its counters file, if it runs.
    pub fn status(&self, i: usize) -> Option<NodeStatus> {
        self.nodes[i].as_ref()?;
        let f = self.configs[i].counters_file.as_ref()?;
        NodeStatus::from_snapshot(&read_counters(f).ok()?)
    }

    /// Waits until exactly one running node serves clients; returns its
    /// position.
    pub fn leader(&self, within: Duration) -> anyhow::Result<usize> {
        let until = Instant::now() + within;
        loop {
            let serving: Vec<usize> = (0..self.len())
                .filter(|&i| self.status(i).is_some_and(|s| s.serving))
                .collect();
            if let [one] = serving[..] {
                return Ok(one);
            }
            anyhow::ensure!(
                Instant::now() < until,
                "no single leader within {within:?} (serving: {serving:?})"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until every running node's next sequence is `next_seq`.
    pub fn converge(&self, next_seq: u64, within: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + within;
        loop {
            let seqs: Vec<Option<u64>> = (0..self.len())
                .map(|i| self.status(i).map(|s| s.next_seq))
                .collect();
            if (0..self.len()).all(|i| self.nodes[i].is_none() || seqs[i] == Some(next_seq)) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < until,
                "nodes did not converge on {next_seq}: {seqs:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for i in 0..self.len() {
            self.stop_node(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
