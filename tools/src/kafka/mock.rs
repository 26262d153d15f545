//! librdkafka's mock cluster, in this process: Kafka brokers on loopback
//! for tests and scripts (no JVM). It supports what the bridge uses:
//! metadata, the idempotent producer, ListOffsets and fetches.

use super::error::KafkaBridgeError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// A running mock cluster; its brokers stop when it is dropped.
pub struct MockKafka {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl MockKafka {
    /// Starts `brokers` brokers on 127.0.0.1 (ephemeral ports).
    pub fn start(brokers: i32) -> Result<Self, KafkaBridgeError> {
        let cluster = MockCluster::new(brokers.max(1)).map_err(|e| KafkaBridgeError::Mock(e.to_string()))?;
        Ok(MockKafka { cluster })
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaBridgeError> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| KafkaBridgeError::Mock(format!("creating topic {topic}: {e}")))
    }

    /// The `bootstrap.servers` list of the cluster.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}
