/*
 * Peregrine's C shim over DPDK.
 *
 * DPDK implements its fast path (rx/tx burst, mbuf alloc/free, data access,
 * lcore id, TSC) as static inline functions in headers, which have no symbol
 * to link against. Each `pg_*` function below is a real, exported wrapper so
 * Rust can call it. The offload bit constants are re-exported as plain
 * `static const` values because bindgen cannot evaluate `RTE_BIT64(n)`.
 */
#ifndef PEREGRINE_DPDK_SHIM_H
#define PEREGRINE_DPDK_SHIM_H

#include <stdint.h>

#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* Device offload capabilities / configuration bits (rte_eth_conf). */
static const uint64_t PG_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
static const uint64_t PG_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
static const uint64_t PG_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
static const uint64_t PG_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint64_t PG_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t PG_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint32_t PG_LCORE_ID_ANY = LCORE_ID_ANY;
static const uint16_t PG_MBUF_DEFAULT_BUF_SIZE = RTE_MBUF_DEFAULT_BUF_SIZE;

/* What the driver said about a received frame's checksums. */
#define PG_CKSUM_UNKNOWN 0 /* no information: verify in software */
#define PG_CKSUM_BAD 1     /* the checksum in the frame is wrong */
#define PG_CKSUM_GOOD 2    /* verified by the device */
#define PG_CKSUM_NONE 3    /* not valid in the frame, but the data is intact */

/* One received frame, as seen by Rust: first segment only. */
struct pg_rx_view {
	const uint8_t *data; /* rte_pktmbuf_mtod(m) */
	uint16_t data_len;   /* bytes in the first segment */
	uint32_t pkt_len;    /* bytes over all segments */
	uint8_t ip_cksum;    /* PG_CKSUM_* */
	uint8_t l4_cksum;    /* PG_CKSUM_* */
};

/* rte_errno of the calling thread (a per-lcore TLS variable). */
int pg_errno(void);

/* rte_lcore_id(): PG_LCORE_ID_ANY on threads unknown to the EAL. */
uint32_t pg_lcore_id(void);

/* rte_get_tsc_cycles() */
uint64_t pg_tsc_cycles(void);

/* rte_get_tsc_hz() */
uint64_t pg_tsc_hz(void);

/* rte_eth_rx_burst() */
uint16_t pg_rx_burst(uint16_t port_id, uint16_t queue_id,
		     struct rte_mbuf **rx_pkts, uint16_t nb_pkts);

/* rte_eth_tx_burst() */
uint16_t pg_tx_burst(uint16_t port_id, uint16_t queue_id,
		     struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/* rte_pktmbuf_alloc(): NULL when the pool is empty. */
struct rte_mbuf *pg_pktmbuf_alloc(struct rte_mempool *mp);

/* rte_pktmbuf_alloc_bulk(): 0 on success (all `count` allocated), else
 * a negative errno and nothing allocated. */
int pg_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			  unsigned int count);

/* rte_pktmbuf_free(): frees the whole chain; NULL is ignored. */
void pg_pktmbuf_free(struct rte_mbuf *m);

/* rte_pktmbuf_free_bulk() (exported by DPDK; here for symmetry). */
void pg_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);

/* Fills `view` for a received mbuf. */
void pg_mbuf_rx_view(const struct rte_mbuf *m, struct pg_rx_view *view);

/* rte_pktmbuf_mtod(m, uint8_t *) */
uint8_t *pg_mbuf_data(struct rte_mbuf *m);

/* Bytes of room from the data pointer to the end of the first segment. */
uint16_t pg_mbuf_room(const struct rte_mbuf *m);

/* Sets a single-segment mbuf's data_len and pkt_len to `len`.
 * Returns 0, or -1 (nothing changed) when `len` exceeds the room. */
int pg_mbuf_set_len(struct rte_mbuf *m, uint16_t len);

/* Requests IPv4 header and UDP checksum offload for an Ethernet/IPv4/UDP
 * frame whose headers are `l2_len` and `l3_len` bytes long. The caller
 * must have zeroed the IPv4 checksum and put the pseudo-header checksum
 * into the UDP checksum field, as the DPDK offload contract requires. */
void pg_mbuf_tx_cksum_offload(struct rte_mbuf *m, uint16_t l2_len,
			      uint16_t l3_len, int ip, int udp);

#endif
