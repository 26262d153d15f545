//! Kernel UDP port: non-blocking, batched with `recvmmsg`/`sendmmsg`.
//!
//! The caller busy-polls [`DatagramPort::receive`]; each call is one
//! `recvmmsg` that fills as many slots of the port's own batch as datagrams
//! are queued, so under load the system-call cost is spread over a whole
//! burst; [`DatagramPort::consume`] then lends them out of that batch (the
//! `recvmmsg` buffers are the backing store). [`DatagramPort::recv`]
//! receives straight into a caller's batch instead. Sends are one
//! `sendmmsg` per batch. Only standard calls are used, so OpenOnload
//! accelerates this path unchanged.
//!
//! Segmentation offload: consecutive datagrams of a batch that go to the
//! same peer with the same length (the last may be shorter) leave as one
//! message of that `sendmmsg`, with Linux's `UDP_SEGMENT` control message
//! (UDP GSO, Linux 4.18): the kernel builds one socket buffer and one route
//! lookup for the run and cuts it into datagrams as late as it can (in the
//! NIC where it supports it). The receiver sees the same datagrams as
//! before. A reply stream to one client is exactly such a run (full
//! MoldUDP64 packets of 14 messages), and on loopback the sender's kernel
//! cost per datagram falls to about a third. The port does not segment
//! where it cannot tell that the kernel will: a kernel without
//! `UDP_SEGMENT` (its `getsockopt` fails at bind), or a process running
//! under OpenOnload (`LD_PRELOAD` naming libonload), whose stack would send
//! a run as one long datagram. Where the kernel refuses a run (a route
//! without checksum offload, a path MTU below the segment), the port sends
//! that run and the rest of the batch one datagram at a time, and stops
//! segmenting for good; [`UdpOptions::segmentation`] turns it off from the
//! start.
//!
//! Receive coalescing: with Linux's `UDP_GRO` socket option (Linux 5.0)
//! the kernel may hand over several datagrams from one peer that arrived
//! as one run (a sender's segmented run on loopback, or a NIC's receive
//! coalescing) as one message, with their size in a control message,
//! instead of building, queueing and copying one socket buffer per
//! datagram. The port cuts such a message back into its datagrams, so
//! [`DatagramPort::consume`] and [`DatagramPort::recv`] lend exactly the
//! datagrams that were sent. A coalesced message does not fit a caller's
//! small slots, so with coalescing on, `recv` receives into the port's own
//! batch and copies out from there. Off under OpenOnload (as segmentation,
//! and for the same reason: its stack is not the kernel's), where the
//! option is refused, or through [`UdpOptions::receive_coalescing`].
//!
//! Datagram size: the port's own receive batch has slots of
//! [`DATAGRAM_SLOT_BYTES`], so every datagram the socket can deliver (up to
//! [`crate::MAX_UDP_PAYLOAD`] bytes over IPv4) arrives whole, in the same
//! single `recvmmsg` as ordinary ones: no second receive path, no copy, no
//! allocation per datagram. The alternative, small slots with truncation
//! detected through `MSG_TRUNC`, would have to refuse what it cut off,
//! and a client cannot tell which of its messages were lost. The large
//! slots cost address space, not memory (see [`crate::batch`]), and do not
//! slow the common path: the kernel copies only the bytes a datagram has.
//! A caller's batch passed to [`DatagramPort::recv`] keeps its own slot
//! size; a datagram longer than its slots is dropped and counted
//! (`rx_oversize`), never delivered cut short.

use crate::batch::{PacketBatch, DATAGRAM_SLOT_BYTES};
use crate::error::NetError;
use crate::port::{DatagramPort, Peer, Port, PortCounters};
use crate::{sockaddr, sockopt};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

mod receive_headers;
use receive_headers::ReceiveHeaders;

/// `UDP_SEGMENT` from `<linux/udp.h>` (not in the libc crate for glibc).
const UDP_SEGMENT: libc::c_int = 103;
/// Most datagrams per segmented message: one below the kernel's
/// `UDP_MAX_SEGMENTS` (64), which kernels before 5.16 checked against a
/// length that included the headers, refusing a run of exactly 64.
const MAX_SEGMENTS: usize = 63;
/// Largest UDP payload of one IPv4 message, which a segmented run must fit.
const MAX_RUN_BYTES: usize = 65_507;

/// `UDP_GRO` from `<linux/udp.h>`: as a socket option, turns receive
/// coalescing on; as a received control message, the size of the
/// datagrams a coalesced message holds.
const UDP_GRO: libc::c_int = 104;

/// The control message of a segmented send: a `cmsghdr` and the segment
/// size, laid out as `CMSG_SPACE(sizeof(u16))` bytes.
#[repr(C)]
#[derive(Clone, Copy)]
struct SegmentControl {
    header: libc::cmsghdr,
    segment_size: u16,
    _pad: [u8; 6],
}

// SAFETY: CMSG_SPACE and CMSG_LEN are pure arithmetic on their argument.
const SEGMENT_CONTROL_SPACE: usize = unsafe { libc::CMSG_SPACE(2) } as usize;
// SAFETY: as above.
const SEGMENT_CONTROL_LEN: usize = unsafe { libc::CMSG_LEN(2) } as usize;
const _: () = assert!(std::mem::size_of::<SegmentControl>() == SEGMENT_CONTROL_SPACE);
const _: () = assert!(std::mem::offset_of!(SegmentControl, segment_size) + 2 == SEGMENT_CONTROL_LEN);

/// Whether segmented sends can be used on `fd`: the kernel knows
/// `UDP_SEGMENT` (Linux 4.18; `getsockopt` fails before), and the process
/// is not running under OpenOnload, whose stack ignores the control
/// message and would send a whole run as one datagram.
fn segmentation_available(fd: libc::c_int) -> bool {
    let onload = under_onload();
    let mut size: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid socket, and an int-sized buffer with its length.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_UDP,
            UDP_SEGMENT,
            &mut size as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    rc == 0 && !onload
}

/// Whether the process runs under OpenOnload (`LD_PRELOAD` names it).
fn under_onload() -> bool {
    std::env::var_os("LD_PRELOAD").is_some_and(|v| v.to_string_lossy().contains("onload"))
}

/// Turns receive coalescing on for `fd` if it can be: not under OpenOnload,
/// and the kernel accepts `UDP_GRO`. Returns whether it is on.
fn enable_coalescing(fd: libc::c_int) -> bool {
    if under_onload() {
        return false;
    }
    let one: libc::c_int = 1;
    // SAFETY: a valid socket, and an int-sized option value with its length.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// The datagram size of a coalesced message, from its `UDP_GRO` control
/// message; 0 when it has none (one datagram).
fn coalesced_size(h: &libc::msghdr) -> usize {
    let mut size = 0;
    // SAFETY: CMSG_LEN is pure arithmetic.
    let int_len = unsafe { libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    // SAFETY: `h` is a header the kernel has just filled: its control
    // pointer and length describe a buffer we own (or are null and 0).
    // CMSG_FIRSTHDR/CMSG_NXTHDR return only headers that lie whole within
    // msg_controllen bytes, and the int after a header is read only when
    // that header's cmsg_len says the message holds it; the kernel wrote
    // cmsg_len no larger than what it copied.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_UDP
                && (*c).cmsg_type == UDP_GRO
                && (*c).cmsg_len as usize >= int_len
            {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                size = usize::try_from(v).unwrap_or(0);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    size
}

impl SegmentControl {
    fn new(segment_size: u16) -> Self {
        SegmentControl {
            header: libc::cmsghdr {
                cmsg_len: SEGMENT_CONTROL_LEN as _,
                cmsg_level: libc::SOL_UDP,
                cmsg_type: UDP_SEGMENT,
            },
            segment_size,
            _pad: [0; 6],
        }
    }
}

/// Socket settings for a [`UdpPort`].
#[derive(Clone, Copy, Debug)]
pub struct UdpOptions {
    /// Requested `SO_RCVBUF` in bytes (0 = kernel default).
    pub recv_buffer: usize,
    /// Requested `SO_SNDBUF` in bytes (0 = kernel default).
    pub send_buffer: usize,
    /// Largest batch passed to `recvmmsg`/`sendmmsg` in one call.
    pub max_batch: usize,
    /// `sendmmsg` retries after `EAGAIN` before the rest of a batch is
    /// dropped (each retry is one busy-spin round).
    pub send_retries: u32,
    /// Send runs of equal-sized datagrams to one peer as one UDP GSO
    /// message (see the module docs). On by default.
    pub segmentation: bool,
    /// Let the kernel hand over runs of datagrams as one message (UDP
    /// GRO, see the module docs). On by default.
    pub receive_coalescing: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            recv_buffer: 8 << 20,
            send_buffer: 8 << 20,
            max_batch: 64,
            send_retries: 10_000,
            segmentation: true,
            receive_coalescing: true,
        }
    }
}

/// A bound, non-blocking UDP socket with preallocated `mmsghdr` arrays.
pub struct UdpPort {
    socket: UdpSocket,
    local: SocketAddr,
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_storage>,
    /// Per message of a `sendmmsg`: its `UDP_SEGMENT` control message.
    controls: Vec<SegmentControl>,
    /// Per message of a `sendmmsg`: how many datagrams it carries.
    runs: Vec<u8>,
    /// Per message of a `sendmmsg`: its payload bytes.
    run_bytes: Vec<u32>,
    /// Whether runs are sent segmented (turned off for good when the
    /// kernel refuses it).
    segmentation: bool,
    /// Messages sent as segmented runs (tests check that runs form).
    #[cfg(test)]
    segmented_runs: u64,
    send_retries: u32,
    counters: PortCounters,
    buffers: (usize, usize),
    /// Whether the kernel may coalesce received datagrams.
    coalescing: bool,
    /// The `recvmmsg` headers, kept armed between calls.
    rx: ReceiveHeaders,
    /// Per entry of the last `recvmmsg`'s batch: the size of the datagrams
    /// it holds back to back, or 0 for one datagram.
    rx_sizes: Vec<u32>,
    /// Coalesced messages received (tests check that coalescing happens).
    #[cfg(test)]
    coalesced_received: u64,
    /// Datagrams received by `receive`, lent by `consume`; `None` only
    /// while `consume` lends from it.
    held: Option<PacketBatch>,
    /// The first held entry not wholly consumed yet.
    held_pos: usize,
    /// Bytes of that entry already consumed (a coalesced entry is lent one
    /// datagram at a time).
    held_off: usize,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` are scratch values rewritten
// before every send and never dereferenced otherwise. Those inside `rx`
// point into `rx`'s own heap buffers (which do not move with the port) and
// into the batch last received into; they are used only by the next
// `recvmmsg`, after `ReceiveHeaders::arm` has checked them against that
// call's batch. The port is owned by one thread at a time.
unsafe impl Send for UdpPort {}

impl UdpPort {
    /// Binds `addr` (port 0 picks a free port) with `opts`.
    pub fn bind(addr: SocketAddr, opts: UdpOptions) -> Result<Self, NetError> {
        let setup = |what: &'static str, source: io::Error| NetError::Setup {
            what,
            addr: addr.to_string(),
            source,
        };
        let socket = UdpSocket::bind(addr).map_err(|e| setup("bind", e))?;
        Self::from_socket(socket, opts).map_err(|e| setup("socket options", e))
    }

    /// Wraps an already bound socket (made non-blocking here).
    pub fn from_socket(socket: UdpSocket, opts: UdpOptions) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let fd = socket.as_raw_fd();
        let buffers = sockopt::set_buffers(fd, opts.recv_buffer, opts.send_buffer)?;
        let local = socket.local_addr()?;
        let n = opts.max_batch.max(1);
        // SAFETY: all-zero bytes are valid values of these plain C structs.
        let (hdr, iov, st) = unsafe {
            (
                std::mem::zeroed::<libc::mmsghdr>(),
                std::mem::zeroed::<libc::iovec>(),
                std::mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        let coalescing = opts.receive_coalescing && enable_coalescing(fd);
        let mut held = PacketBatch::with_slot_bytes(n, DATAGRAM_SLOT_BYTES);
        if coalescing {
            // Coalesced runs fill the slots deep: resident from the start
            // (see `crate::batch`).
            held.fault_in();
        }
        Ok(UdpPort {
            socket,
            local,
            hdrs: vec![hdr; n],
            iovs: vec![iov; n],
            addrs: vec![st; n],
            controls: vec![SegmentControl::new(0); n],
            runs: vec![0; n],
            run_bytes: vec![0; n],
            segmentation: opts.segmentation && segmentation_available(fd),
            #[cfg(test)]
            segmented_runs: 0,
            send_retries: opts.send_retries,
            counters: PortCounters::default(),
            buffers,
            coalescing,
            rx: ReceiveHeaders::new(n, coalescing),
            rx_sizes: vec![0; n],
            #[cfg(test)]
            coalesced_received: 0,
            held: Some(held),
            held_pos: 0,
            held_off: 0,
        })
    }

    /// Whether the kernel may hand over coalesced runs of datagrams (see
    /// the module docs): false when [`UdpOptions::receive_coalescing`] was
    /// off or the option was refused.
    pub fn receive_coalescing(&self) -> bool {
        self.coalescing
    }

    /// The underlying socket (e.g. for `connect` in a client).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// Whether runs of datagrams are still sent segmented (see the module
    /// docs): false when [`UdpOptions::segmentation`] was off or the kernel
    /// refused a segmented send.
    pub fn segmentation(&self) -> bool {
        self.segmentation
    }

    /// `(SO_RCVBUF, SO_SNDBUF)` as the kernel reports them.
    pub fn buffer_sizes(&self) -> (usize, usize) {
        self.buffers
    }

    /// How many datagrams from `i` on (below `to`) can leave as one
    /// segmented message: the same peer and length as datagram `i`, the
    /// last one possibly shorter, within the kernel's limits. 1 when
    /// segmentation is off or `i` has nothing to share.
    fn run_at(&self, batch: &PacketBatch, i: usize, to: usize) -> usize {
        let (peer, _, data) = batch.get(i);
        let size = data.len();
        if !self.segmentation || size == 0 || !matches!(peer, Peer::Addr(_)) {
            return 1;
        }
        let most = (to - i).min(MAX_SEGMENTS).min(MAX_RUN_BYTES / size);
        let mut n = 1;
        while n < most {
            let (next_peer, _, next) = batch.get(i + n);
            if next_peer != peer || next.is_empty() || next.len() > size {
                break;
            }
            n += 1;
            if next.len() < size {
                break;
            }
        }
        n
    }

    /// Sends datagrams `from..to` of `batch` (whose storage starts at
    /// `base`) in `sendmmsg` calls, counting what left (`tx_packets`,
    /// `tx_bytes`) and what could not (`tx_dropped`); returns how many
    /// datagrams from `from` on were dealt with either way (the rest found
    /// the socket full until the retries ran out).
    fn send_slice(
        &mut self,
        batch: &PacketBatch,
        from: usize,
        to: usize,
        base: *const u8,
    ) -> Result<usize, NetError> {
        let stride = batch.slot_stride();
        // One message per run; iovs[j] is datagram from + j, so a run's
        // iovecs are consecutive.
        let mut msgs = 0usize;
        let mut i = from;
        while i < to {
            let run = self.run_at(batch, i, to);
            let m = msgs;
            let j = i - from;
            self.runs[m] = run as u8;
            self.run_bytes[m] = 0;
            for k in 0..run {
                let len = batch.get(i + k).2.len();
                self.run_bytes[m] += len as u32;
                // SAFETY: slot `i + k` lies within the batch storage
                // (i + k < len <= capacity).
                self.iovs[j + k].iov_base = unsafe { base.add((i + k) * stride) } as *mut libc::c_void;
                self.iovs[j + k].iov_len = len;
            }
            let h = &mut self.hdrs[m].msg_hdr;
            h.msg_flags = 0;
            h.msg_iov = &mut self.iovs[j];
            h.msg_iovlen = run as _;
            match batch.get(i).0 {
                Peer::Addr(addr) => {
                    let namelen = sockaddr::to_storage(&addr, &mut self.addrs[m]);
                    h.msg_name = &mut self.addrs[m] as *mut libc::sockaddr_storage as *mut libc::c_void;
                    h.msg_namelen = namelen;
                }
                Peer::Conn(_) => {
                    // Not addressable over UDP: send nowhere, count it.
                    h.msg_name = std::ptr::null_mut();
                    h.msg_namelen = 0;
                    self.iovs[j].iov_len = 0;
                }
            }
            if run > 1 {
                self.controls[m] = SegmentControl::new(self.iovs[j].iov_len as u16);
                h.msg_control = &mut self.controls[m] as *mut SegmentControl as *mut libc::c_void;
                h.msg_controllen = SEGMENT_CONTROL_SPACE as _;
            } else {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
            }
            msgs += 1;
            i += run;
        }
        let mut done_msgs = 0usize;
        let mut sent = 0usize;
        let mut retries = 0u32;
        while done_msgs < msgs {
            // SAFETY: hdrs[done_msgs..msgs] were initialised above and point
            // at live iovecs, addresses, control messages and batch slots
            // that outlive the call.
            let rc = unsafe {
                libc::sendmmsg(
                    self.socket.as_raw_fd(),
                    self.hdrs.as_mut_ptr().add(done_msgs),
                    (msgs - done_msgs) as libc::c_uint,
                    0,
                )
            };
            if rc > 0 {
                for m in done_msgs..done_msgs + rc as usize {
                    sent += usize::from(self.runs[m]);
                    self.counters.tx_packets += u64::from(self.runs[m]);
                    self.counters.tx_bytes += u64::from(self.run_bytes[m]);
                    #[cfg(test)]
                    {
                        self.segmented_runs += u64::from(self.runs[m] > 1);
                    }
                }
                done_msgs += rc as usize;
                continue;
            }
            let err = io::Error::last_os_error();
            let run = usize::from(self.runs[done_msgs]);
            match err.raw_os_error() {
                Some(libc::EIO) | Some(libc::EINVAL) | Some(libc::EMSGSIZE) | Some(libc::ENOPROTOOPT)
                    if run > 1 =>
                {
                    // The kernel will not segment this run (a route without
                    // checksum offload, a path MTU below the segment, an
                    // old kernel's limits): stop asking, and send the rest
                    // of the slice, this run first, one datagram at a time.
                    self.segmentation = false;
                    let first = from
                        + self.runs[..done_msgs]
                            .iter()
                            .map(|&r| usize::from(r))
                            .sum::<usize>();
                    return Ok(sent + self.send_slice(batch, first, to, base)?);
                }
                Some(libc::EAGAIN) | Some(libc::EINTR) | Some(libc::ENOBUFS) => {
                    retries += 1;
                    if retries > self.send_retries {
                        break;
                    }
                    std::hint::spin_loop();
                }
                Some(libc::ECONNREFUSED)
                | Some(libc::EDESTADDRREQ)
                | Some(libc::EINVAL)
                | Some(libc::EMSGSIZE)
                | Some(libc::EAFNOSUPPORT) => {
                    // This message cannot go (bad address, ICMP unreachable
                    // reported late): drop its datagrams and carry on.
                    self.counters.tx_dropped += run as u64;
                    sent += run;
                    done_msgs += 1;
                }
                _ => {
                    return Err(NetError::Syscall {
                        call: "sendmmsg",
                        source: err,
                    })
                }
            }
        }
        Ok(sent)
    }

    /// True while datagrams received by `receive` wait to be consumed.
    fn holds(&self) -> bool {
        self.held.as_ref().is_some_and(|b| self.held_pos < b.len())
    }

    /// One `recvmmsg` of up to `max` datagrams into `batch` (cleared).
    fn recv_burst(&mut self, batch: &mut PacketBatch, max: usize) -> Result<usize, NetError> {
        batch.clear();
        let n = max.min(batch.capacity()).min(self.rx.len());
        let (stride, room) = (batch.slot_stride(), batch.slot_bytes());
        let base = batch.slots_ptr();
        let hdrs = self.rx.arm(base, stride, room, n);
        // SAFETY: `arm` pointed the first n headers at live iovecs and
        // address buffers and at the batch's first n slots (`room` bytes
        // each, `stride` apart, inside its storage), and, with coalescing
        // on, each at its own control buffer with `msg_controllen` its size
        // (else no control buffer); MSG_DONTWAIT never blocks; a null
        // timeout is allowed.
        let rc = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                hdrs,
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        self.rx.filled(rc.max(0) as usize);
        if rc < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                // A previous send's ICMP port-unreachable surfaces here on
                // some kernels: not a receive failure.
                Some(libc::ECONNREFUSED) => Ok(0),
                _ => Err(NetError::Syscall {
                    call: "recvmmsg",
                    source: err,
                }),
            };
        }
        let got = rc as usize;
        let mut kept = 0usize;
        let mut datagrams = 0usize;
        for j in 0..got {
            let (hdr, addr) = self.rx.entry(j);
            let len = hdr.msg_len as usize;
            // A message cut short is refused whole (counted). So is one whose
            // control messages were cut short with coalescing on: it may be
            // a coalesced run whose datagram size was lost, which would
            // otherwise be lent as one long datagram. (A coalesced run
            // always fits the port's own slots: the kernel stops a run
            // below 64 KiB.)
            let flags = hdr.msg_hdr.msg_flags;
            let truncated =
                flags & libc::MSG_TRUNC != 0 || (self.coalescing && flags & libc::MSG_CTRUNC != 0);
            let peer = sockaddr::from_storage(addr);
            // A message with a datagram size no larger than itself holds
            // ceil(len / size) datagrams; anything else is one.
            let size = if self.coalescing {
                coalesced_size(&hdr.msg_hdr)
            } else {
                0
            };
            let (size, count) = match size {
                s if s > 0 && s < len => (s, len.div_ceil(s)),
                _ => (0, 1),
            };
            #[cfg(test)]
            if count > 1 {
                self.coalesced_received += 1;
            }
            self.counters.rx_packets += count as u64;
            self.counters.rx_bytes += len as u64;
            match (peer, truncated) {
                (Some(addr), false) => {
                    if kept != j {
                        // Compact: move datagram j down to slot `kept`.
                        // SAFETY: both ranges lie inside the batch storage
                        // and `kept < j`, so `copy` (memmove) is sound.
                        unsafe {
                            std::ptr::copy(base.add(j * stride), base.add(kept * stride), len);
                        }
                    }
                    batch.set_entry(kept, Peer::Addr(addr), len);
                    // Non-zero only in the port's own batch: a caller's
                    // batch is filled here only with coalescing off.
                    self.rx_sizes[kept] = size as u32;
                    kept += 1;
                    datagrams += count;
                }
                _ => self.counters.rx_oversize += count as u64,
            }
        }
        batch.set_len(kept);
        Ok(datagrams)
    }
}

impl DatagramPort for UdpPort {
    fn receive(&mut self, max: usize) -> Result<usize, NetError> {
        if self.holds() {
            return Ok(0);
        }
        let Some(mut batch) = self.held.take() else {
            return Ok(0);
        };
        self.held_pos = 0;
        self.held_off = 0;
        let got = self.recv_burst(&mut batch, max);
        self.held = Some(batch);
        got
    }

    fn consume<F>(&mut self, mut f: F) -> usize
    where
        F: FnMut(SocketAddr, &[u8], &mut dyn Port) -> bool,
    {
        // Moved out while lent, so `f` can have the port to send with.
        let Some(batch) = self.held.take() else {
            return 0;
        };
        let mut consumed = 0;
        'entries: while self.held_pos < batch.len() {
            let (peer, _, data) = batch.get(self.held_pos);
            let Peer::Addr(from) = peer else {
                self.held_pos += 1;
                continue;
            };
            // A coalesced entry is lent one datagram at a time, from where
            // the last call stopped.
            let size = match self.rx_sizes[self.held_pos] as usize {
                0 => data.len(),
                s => s,
            };
            // At least one lend per entry (an empty datagram is one);
            // `size` is non-zero whenever `data` is not empty.
            loop {
                let end = (self.held_off + size).min(data.len());
                if !f(from, &data[self.held_off..end], self) {
                    break 'entries;
                }
                consumed += 1;
                self.held_off = end;
                if end == data.len() {
                    break;
                }
            }
            self.held_pos += 1;
            self.held_off = 0;
        }
        self.held = Some(batch);
        consumed
    }

    /// Held datagrams first (copied); otherwise one `recvmmsg` straight
    /// into `batch`, or, with receive coalescing on, into the port's own
    /// batch, copied from there.
    fn recv(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        if !self.holds() {
            if !self.coalescing {
                return self.recv_burst(batch, batch.capacity());
            }
            // A coalesced message needs the port's large slots.
            self.receive(batch.capacity())?;
        }
        batch.clear();
        // A held datagram longer than the caller's slots cannot be lent
        // whole: dropped and counted, as the kernel would have cut it.
        let mut too_long = 0u64;
        self.consume(|from, data, _| {
            if data.len() > batch.slot_bytes() {
                too_long += 1;
                return true;
            }
            batch.push(Peer::Addr(from), data)
        });
        self.counters.rx_oversize += too_long;
        Ok(batch.len())
    }
}

impl Port for UdpPort {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&mut self, batch: &mut PacketBatch) -> Result<usize, NetError> {
        let total = batch.len();
        let base = batch.slots_ptr() as *const u8;
        let chunk = self.hdrs.len();
        let mut done = 0usize;
        let mut sent_total = 0usize;
        while done < total {
            let to = (done + chunk).min(total);
            let sent = self.send_slice(batch, done, to, base)?;
            self.counters.tx_dropped += (to - done - sent) as u64;
            sent_total += sent;
            done = to;
        }
        batch.clear();
        Ok(sent_total)
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    fn recv_some(port: &mut UdpPort, batch: &mut PacketBatch, want: usize) -> usize {
        let start = std::time::Instant::now();
        let mut got = 0;
        while got < want && start.elapsed() < std::time::Duration::from_secs(5) {
            got = port.recv(batch).unwrap();
        }
        got
    }

    #[test]
    fn batch_round_trip_between_two_ports() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut tx = PacketBatch::new(8);
        for i in 0..5u8 {
            assert!(tx.push(Peer::Addr(b.local_addr()), &[i; 100]));
        }
        assert_eq!(a.send(&mut tx).unwrap(), 5);
        assert!(tx.is_empty());
        let mut rx = PacketBatch::new(8);
        let mut seen = Vec::new();
        while seen.len() < 5 {
            let n = recv_some(&mut b, &mut rx, 1);
            assert!(n > 0, "datagrams did not arrive");
            for i in 0..n {
                let (peer, _, data) = rx.get(i);
                assert_eq!(peer, Peer::Addr(a.local_addr()));
                assert_eq!(data.len(), 100);
                seen.push(data[0]);
            }
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        assert_eq!(a.counters().tx_packets, 5);
        assert_eq!(b.counters().rx_packets, 5);
    }

    /// `(length, first byte)` of datagrams, in the order sent.
    type Arrivals = Vec<(usize, u8)>;

    /// Puts in `tx` a run of 20 full packets and a shorter one to `b`,
    /// three to `c`, two to `b`, a longer one to `b`; returns what `b` and
    /// `c` should receive.
    fn mixed_runs(tx: &mut PacketBatch, b: SocketAddr, c: SocketAddr) -> (Arrivals, Arrivals) {
        let plan: Vec<(SocketAddr, usize)> = std::iter::repeat_n((b, 1448), 20)
            .chain([(b, 700)])
            .chain(std::iter::repeat_n((c, 1448), 3))
            .chain(std::iter::repeat_n((b, 1448), 2))
            .chain([(b, 1472)])
            .collect();
        let (mut to_b, mut to_c) = (Vec::new(), Vec::new());
        for (k, &(to, len)) in plan.iter().enumerate() {
            let tag = k as u8 + 1;
            assert!(tx.push(Peer::Addr(to), &vec![tag; len]));
            if to == b { &mut to_b } else { &mut to_c }.push((len, tag));
        }
        (to_b, to_c)
    }

    /// Reads `n` datagrams from `s` (blocking, 5 s at most each).
    fn read_datagrams(s: &UdpSocket, n: usize) -> Vec<(usize, u8)> {
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = vec![0u8; 65_536];
        (0..n)
            .map(|_| {
                let (len, _) = s.recv_from(&mut buf).expect("a datagram");
                assert!(buf[..len].iter().all(|&x| x == buf[0]), "datagram intact");
                (len, buf[0])
            })
            .collect()
    }

    /// Sends the datagrams of [`mixed_runs`] from `a` in one batch and
    /// checks that each receiver got its own, whole and in order.
    fn send_mixed_runs(a: &mut UdpPort) {
        let (b, c) = (UdpSocket::bind(lo()).unwrap(), UdpSocket::bind(lo()).unwrap());
        let mut tx = PacketBatch::with_slot_bytes(32, 2048);
        let (to_b, to_c) = mixed_runs(&mut tx, b.local_addr().unwrap(), c.local_addr().unwrap());
        assert_eq!(a.send(&mut tx).unwrap(), 27);
        assert_eq!(read_datagrams(&b, to_b.len()), to_b);
        assert_eq!(read_datagrams(&c, to_c.len()), to_c);
    }

    #[test]
    fn runs_to_one_peer_leave_segmented_and_arrive_as_sent() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        send_mixed_runs(&mut a);
        assert!(a.segmentation());
        assert_eq!(
            a.segmented_runs, 3,
            "20 + 1 to b, 3 to c, 2 to b; the longer one alone"
        );
        assert_eq!((a.counters().tx_packets, a.counters().tx_dropped), (27, 0));
    }

    #[test]
    fn without_segmentation_the_same_datagrams_leave_one_by_one() {
        let opts = UdpOptions {
            segmentation: false,
            ..UdpOptions::default()
        };
        let mut a = UdpPort::bind(lo(), opts).unwrap();
        send_mixed_runs(&mut a);
        assert_eq!(a.segmented_runs, 0);
    }

    /// Sends [`mixed_runs`] (segmented) to a `UdpPort` receiving with
    /// `opts` and to a plain socket; returns the receiver after reading
    /// every datagram meant for it through `consume`, which takes
    /// `per_call` datagrams a call and refuses the next (it stays held for
    /// the next call), each checked whole and in order. `receive` must
    /// report every datagram once.
    fn receive_mixed_runs(opts: UdpOptions, per_call: usize) -> UdpPort {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut b = UdpPort::bind(lo(), opts).unwrap();
        let c = UdpSocket::bind(lo()).unwrap();
        let mut tx = PacketBatch::with_slot_bytes(32, 2048);
        let (to_b, to_c) = mixed_runs(&mut tx, b.local_addr(), c.local_addr().unwrap());
        assert_eq!(a.send(&mut tx).unwrap(), 27);
        assert_eq!(read_datagrams(&c, to_c.len()), to_c);
        let mut got: Arrivals = Vec::new();
        let mut received = 0;
        let start = std::time::Instant::now();
        while got.len() < to_b.len() && start.elapsed() < std::time::Duration::from_secs(5) {
            received += b.receive(64).unwrap();
            let mut lent = 0;
            b.consume(|from, data, _| {
                assert_eq!(from, a.local_addr());
                if lent == per_call {
                    return false;
                }
                lent += 1;
                assert!(data.iter().all(|&x| x == data[0]), "datagram intact");
                got.push((data.len(), data[0]));
                true
            });
        }
        assert_eq!(got, to_b);
        assert_eq!(received, to_b.len(), "receive counts datagrams");
        assert_eq!(b.counters().rx_packets, to_b.len() as u64);
        b
    }

    /// How many of the pages spanning `len` bytes from `ptr` are resident,
    /// and how many there are.
    fn resident_pages(ptr: *const u8, len: usize) -> (usize, usize) {
        let page = 4096usize;
        let start = (ptr as usize) & !(page - 1);
        let end = ptr as usize + len;
        let n = (end - start).div_ceil(page);
        let mut pages = vec![0u8; n];
        // SAFETY: the range is a live allocation rounded out to whole pages,
        // all mapped (a batch this large is its own mapping), and `pages`
        // has one byte per page.
        let rc = unsafe { libc::mincore(start as *mut libc::c_void, end - start, pages.as_mut_ptr()) };
        assert_eq!(rc, 0, "mincore: {}", io::Error::last_os_error());
        (pages.iter().filter(|&&b| b & 1 != 0).count(), n)
    }

    fn held_pages(port: &mut UdpPort) -> (usize, usize) {
        let batch = port.held.as_mut().unwrap();
        let len = batch.capacity() * batch.slot_stride();
        resident_pages(batch.slots_ptr(), len)
    }

    #[test]
    fn a_coalescing_port_has_its_receive_slots_resident_from_the_start() {
        let mut on = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        assert!(on.receive_coalescing());
        let (resident, pages) = held_pages(&mut on);
        assert_eq!(resident, pages, "no page fault on the receive path");
        let off = UdpOptions {
            receive_coalescing: false,
            ..UdpOptions::default()
        };
        let (resident, pages) = held_pages(&mut UdpPort::bind(lo(), off).unwrap());
        assert!(
            resident < pages / 2,
            "without coalescing, only what datagrams touch ({resident} of {pages})"
        );
    }

    #[test]
    fn an_empty_datagram_is_lent_once_among_coalesced_runs() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut tx = PacketBatch::with_slot_bytes(16, 2048);
        for tag in 1..=4u8 {
            assert!(tx.push(Peer::Addr(b.local_addr()), &[tag; 1000]));
        }
        assert!(tx.push(Peer::Addr(b.local_addr()), &[]));
        for tag in 6..=8u8 {
            assert!(tx.push(Peer::Addr(b.local_addr()), &[tag; 1000]));
        }
        assert_eq!(a.send(&mut tx).unwrap(), 8);
        let mut got = Vec::new();
        let start = std::time::Instant::now();
        while got.len() < 8 && start.elapsed() < std::time::Duration::from_secs(5) {
            b.receive(64).unwrap();
            b.consume(|_, data, _| {
                got.push((data.len(), data.first().copied().unwrap_or(0)));
                true
            });
        }
        let want: Vec<(usize, u8)> = (1..=8u8)
            .map(|t| if t == 5 { (0, 0) } else { (1000, t) })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_coalesced_run_is_lent_as_the_datagrams_sent() {
        let b = receive_mixed_runs(UdpOptions::default(), usize::MAX);
        assert!(b.receive_coalescing());
        assert!(
            b.coalesced_received > 0,
            "the kernel coalesced the segmented runs"
        );
    }

    #[test]
    fn a_consumer_stopping_inside_a_coalesced_run_resumes_at_the_next_datagram() {
        let b = receive_mixed_runs(UdpOptions::default(), 3);
        assert!(b.coalesced_received > 0);
    }

    #[test]
    fn without_coalescing_the_same_datagrams_arrive_one_by_one() {
        let opts = UdpOptions {
            receive_coalescing: false,
            ..UdpOptions::default()
        };
        let b = receive_mixed_runs(opts, 5);
        assert!(!b.receive_coalescing());
        assert_eq!(b.coalesced_received, 0);
    }

    /// Receives through `receive`/`consume` (the gateway's path) until
    /// `want` datagrams arrived or 5 s passed; returns (length, first byte)
    /// of each.
    fn consume_some(port: &mut UdpPort, want: usize) -> Arrivals {
        let mut got: Arrivals = Vec::new();
        let start = std::time::Instant::now();
        while got.len() < want && start.elapsed() < std::time::Duration::from_secs(5) {
            port.receive(64).unwrap();
            port.consume(|_, data, _| {
                got.push((data.len(), data[0]));
                true
            });
        }
        got
    }

    #[test]
    fn a_coalesced_run_after_a_plain_datagram_is_still_lent_whole() {
        // A plain datagram carries no datagram-size message, so the kernel
        // writes back a control length of 0 to its header; a run received
        // into that header next needs the control room back, or it arrives
        // cut short and is refused. Several rounds on one port, each a
        // plain datagram received on its own, then a run.
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut tx = PacketBatch::with_slot_bytes(32, 2048);
        for round in 0..4u8 {
            assert!(tx.push(Peer::Addr(b.local_addr()), &[100 + round; 300]));
            assert_eq!(a.send(&mut tx).unwrap(), 1);
            assert_eq!(consume_some(&mut b, 1), vec![(300, 100 + round)]);
            let run: Arrivals = (1..=12u8).map(|k| (1000, k)).collect();
            for &(len, tag) in &run {
                assert!(tx.push(Peer::Addr(b.local_addr()), &vec![tag; len]));
            }
            assert_eq!(a.send(&mut tx).unwrap(), run.len());
            assert_eq!(consume_some(&mut b, run.len()), run, "round {round}");
        }
        assert!(b.coalesced_received >= 4, "every run arrived coalesced");
        assert_eq!(b.counters().rx_oversize, 0);
    }

    #[test]
    fn recv_copies_a_coalesced_run_out_across_calls_into_small_batches() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let c = UdpSocket::bind(lo()).unwrap();
        let mut tx = PacketBatch::with_slot_bytes(32, 2048);
        let (to_b, _) = mixed_runs(&mut tx, b.local_addr(), c.local_addr().unwrap());
        assert_eq!(a.send(&mut tx).unwrap(), 27);
        // Four slots a call: a coalesced run of 21 takes several calls.
        let mut rx = PacketBatch::with_slot_bytes(4, 2048);
        let mut got: Arrivals = Vec::new();
        let start = std::time::Instant::now();
        while got.len() < to_b.len() && start.elapsed() < std::time::Duration::from_secs(5) {
            let n = b.recv(&mut rx).unwrap();
            assert!(n <= 4);
            got.extend((0..n).map(|i| {
                let data = rx.get(i).2;
                (data.len(), data[0])
            }));
        }
        assert_eq!(got, to_b);
        assert!(b.coalesced_received > 0);
        assert_eq!(b.counters().rx_oversize, 0);
    }

    #[test]
    fn a_kernel_refusing_segmentation_gets_single_datagrams_and_nothing_is_lost() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        // A socket without UDP checksums cannot segment: the kernel
        // answers a segmented send with EINVAL.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket, option and int-sized option value.
        let rc = unsafe {
            libc::setsockopt(
                a.socket().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_NO_CHECK,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        send_mixed_runs(&mut a);
        assert!(!a.segmentation(), "turned off after the refusal");
        assert_eq!((a.counters().tx_packets, a.counters().tx_dropped), (27, 0));
    }

    #[test]
    fn a_datagram_that_cannot_go_is_counted_dropped_once_and_the_rest_leave() {
        let mut a = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let b = UdpSocket::bind(lo()).unwrap();
        let to = Peer::Addr(b.local_addr().unwrap());
        let mut tx = PacketBatch::with_slot_bytes(8, 2048);
        for (k, peer) in [to, to, to, Peer::NONE, to, to].into_iter().enumerate() {
            assert!(tx.push(peer, &[k as u8 + 1; 1000]));
        }
        assert_eq!(a.send(&mut tx).unwrap(), 6, "every datagram dealt with");
        let c = a.counters();
        assert_eq!((c.tx_packets, c.tx_bytes, c.tx_dropped), (5, 5000, 1));
        assert_eq!(read_datagrams(&b, 5), [1, 2, 3, 5, 6].map(|t| (1000, t)));
    }

    /// A datagram longer than the caller's slots, through the copy out of
    /// the port's own slots (coalescing on) and through the kernel's
    /// truncation (coalescing off: `recvmmsg` straight into the caller's
    /// slots).
    #[test]
    fn oversize_datagram_is_counted_not_delivered() {
        for receive_coalescing in [true, false] {
            oversize_datagram_is_counted_not_delivered_with(UdpOptions {
                receive_coalescing,
                ..UdpOptions::default()
            });
        }
    }

    fn oversize_datagram_is_counted_not_delivered_with(opts: UdpOptions) {
        let mut b = UdpPort::bind(lo(), opts).unwrap();
        let s = UdpSocket::bind(lo()).unwrap();
        s.send_to(&vec![7u8; crate::SLOT_BYTES + 100], b.local_addr())
            .unwrap();
        s.send_to(&[1u8; 10], b.local_addr()).unwrap();
        let mut rx = PacketBatch::new(4);
        let start = std::time::Instant::now();
        let mut delivered = Vec::new();
        while b.counters().rx_packets < 2 && start.elapsed() < std::time::Duration::from_secs(5) {
            let n = b.recv(&mut rx).unwrap();
            for i in 0..n {
                delivered.push(rx.get(i).2.to_vec());
            }
        }
        assert_eq!(b.counters().rx_oversize, 1);
        assert_eq!(delivered, vec![vec![1u8; 10]]);
    }

    #[test]
    fn consume_lends_held_datagrams_and_keeps_the_rest_on_false() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let s = UdpSocket::bind(lo()).unwrap();
        for i in 0..3u8 {
            s.send_to(&[i; 5], b.local_addr()).unwrap();
        }
        // Loopback delivers during send_to: all three are queued now.
        assert_eq!(b.receive(8).unwrap(), 3);
        assert_eq!(b.receive(8).unwrap(), 0, "nothing new while held");
        let mut seen = Vec::new();
        let n = b.consume(|from, data, _| {
            assert_eq!(from, s.local_addr().unwrap());
            seen.push(data[0]);
            data[0] < 1
        });
        assert_eq!((n, seen.clone()), (1, vec![0, 1]), "stopped at 1, kept it");
        let mut copy = PacketBatch::new(8);
        assert_eq!(b.recv(&mut copy).unwrap(), 2, "held ones first");
        assert_eq!((copy.get(0).2, copy.get(1).2), (&[1u8; 5][..], &[2u8; 5][..]));
        assert_eq!(b.consume(|_, _, _| true), 0);
    }

    #[test]
    fn receive_delivers_the_largest_datagram_whole() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let s = UdpSocket::bind(lo()).unwrap();
        let big: Vec<u8> = (0..crate::MAX_UDP_PAYLOAD).map(|i| i as u8).collect();
        s.send_to(&big, b.local_addr()).unwrap();
        s.send_to(&[9u8; 2060], b.local_addr()).unwrap();
        let start = std::time::Instant::now();
        let mut got = 0;
        while got < 2 && start.elapsed() < std::time::Duration::from_secs(5) {
            got = b.receive(8).unwrap();
        }
        let mut seen = Vec::new();
        b.consume(|_, data, _| {
            seen.push(data.to_vec());
            true
        });
        assert_eq!(seen.len(), 2);
        assert!(seen[0] == big, "the 65,507-byte datagram arrives whole");
        assert_eq!(seen[1], vec![9u8; 2060]);
        assert_eq!(b.counters().rx_oversize, 0);
    }

    #[test]
    fn recv_on_idle_socket_returns_zero() {
        let mut b = UdpPort::bind(lo(), UdpOptions::default()).unwrap();
        let mut rx = PacketBatch::new(4);
        assert_eq!(b.recv(&mut rx).unwrap(), 0);
    }
}
