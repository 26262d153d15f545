/* Non-inline wrappers over DPDK's static-inline fast path; see shim.h. */
#include "shim.h"

int pg_errno(void)
{
	return rte_errno;
}

uint32_t pg_lcore_id(void)
{
	return rte_lcore_id();
}

uint64_t pg_tsc_cycles(void)
{
	return rte_get_tsc_cycles();
}

uint64_t pg_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

uint16_t pg_rx_burst(uint16_t port_id, uint16_t queue_id,
		     struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t pg_tx_burst(uint16_t port_id, uint16_t queue_id,
		     struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *pg_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int pg_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			  unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void pg_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void pg_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

static uint8_t cksum_state(uint64_t flags, uint64_t mask, uint64_t bad,
			   uint64_t good)
{
	uint64_t v = flags & mask;

	if (v == mask)
		return PG_CKSUM_NONE;
	if (v == good)
		return PG_CKSUM_GOOD;
	if (v == bad)
		return PG_CKSUM_BAD;
	return PG_CKSUM_UNKNOWN;
}

void pg_mbuf_rx_view(const struct rte_mbuf *m, struct pg_rx_view *view)
{
	view->data = rte_pktmbuf_mtod(m, const uint8_t *);
	view->data_len = m->data_len;
	view->pkt_len = m->pkt_len;
	view->ip_cksum = cksum_state(m->ol_flags, RTE_MBUF_F_RX_IP_CKSUM_MASK,
				     RTE_MBUF_F_RX_IP_CKSUM_BAD,
				     RTE_MBUF_F_RX_IP_CKSUM_GOOD);
	view->l4_cksum = cksum_state(m->ol_flags, RTE_MBUF_F_RX_L4_CKSUM_MASK,
				     RTE_MBUF_F_RX_L4_CKSUM_BAD,
				     RTE_MBUF_F_RX_L4_CKSUM_GOOD);
}

uint8_t *pg_mbuf_data(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, uint8_t *);
}

uint16_t pg_mbuf_room(const struct rte_mbuf *m)
{
	return (uint16_t)(m->buf_len - m->data_off);
}

int pg_mbuf_set_len(struct rte_mbuf *m, uint16_t len)
{
	if (len > m->buf_len - m->data_off)
		return -1;
	m->data_len = len;
	m->pkt_len = len;
	return 0;
}

void pg_mbuf_tx_cksum_offload(struct rte_mbuf *m, uint16_t l2_len,
			      uint16_t l3_len, int ip, int udp)
{
	m->l2_len = l2_len;
	m->l3_len = l3_len;
	m->ol_flags |= RTE_MBUF_F_TX_IPV4;
	if (ip)
		m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
	if (udp)
		m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
}
