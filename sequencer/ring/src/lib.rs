//! Single-producer single-consumer ring with batch claim and commit.
//!
//! Why our own ring rather than a crate: slots hold the 100-byte message and
//! its routing metadata inline (no boxing, no per-message allocation) and
//! both sides work in batches: the producer stages many slots and publishes
//! them with one release-store, the consumer reads many and frees them with
//! one release-store. Each side keeps a private copy of the other side's
//! index and touches the shared cache line only when that copy says the ring
//! looks full (producer) or empty (consumer). Head and tail live on separate
//! cache lines so the two cores never false-share. `benches/benches/ring.rs`
//! compares it with `crossbeam` `ArrayQueue` and `rtrb` in the same run.
//!
//! Full means back-pressure: [`Producer::stage`] returns false and nothing is
//! dropped; the caller keeps the item and retries.
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

use crossbeam_utils::CachePadded;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Why a ring cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// Capacity must be a power of two and at least 2.
    #[error("ring capacity {0} is not a power of two >= 2")]
    BadCapacity(usize),
}

struct Shared<T> {
    /// Next position the consumer will read (free-running, wraps by mask).
    head: CachePadded<AtomicUsize>,
    /// Next position the producer will publish.
    tail: CachePadded<AtomicUsize>,
    slots: Box<[UnsafeCell<T>]>,
    mask: usize,
}

// SAFETY: slots are only accessed under the head/tail protocol: the producer
// writes slot p only while p - head < capacity (so the consumer is not
// reading it) and publishes with a release-store of tail; the consumer reads
// slot p only while p < tail (acquire-loaded) and frees it with a
// release-store of head. T: Send because values cross threads.
unsafe impl<T: Send> Sync for Shared<T> {}

// SAFETY: an endpoint's raw `base` points into the slots its `Arc` keeps
// alive, and is only used under the protocol above, which holds whichever
// thread the endpoint lives on; so an endpoint may move between threads
// exactly as its `Arc<Shared<T>>` (T: Send) may. Neither is Sync: each is
// owned by one thread at a time.
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: as for `Producer`.
unsafe impl<T: Send> Send for Consumer<T> {}

/// The slot of free-running position `pos` in a ring whose first slot is
/// `base` and whose capacity is `mask + 1`: in bounds for any `pos`, since
/// `pos & mask < capacity`.
#[inline(always)]
fn slot_at<T>(base: *const UnsafeCell<T>, mask: usize, pos: usize) -> *mut T {
    // SAFETY: `base` is the first of `mask + 1` live slots (both copied from
    // the `Shared` the caller's `Arc` keeps alive) and `pos & mask` is below
    // that count, so the offset stays inside the allocation.
    unsafe { UnsafeCell::raw_get(base.add(pos & mask)) }
}

/// Creates a ring of `capacity` slots (a power of two), every slot
/// initialised to `T::default()` up front so steady state never allocates.
pub fn ring<T: Copy + Default + Send>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), RingError> {
    if capacity < 2 || !capacity.is_power_of_two() {
        return Err(RingError::BadCapacity(capacity));
    }
    let slots: Box<[UnsafeCell<T>]> = (0..capacity).map(|_| UnsafeCell::new(T::default())).collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: capacity - 1,
    });
    let base = shared.slots.as_ptr();
    let mask = shared.mask;
    Ok((
        Producer {
            shared: Arc::clone(&shared),
            base,
            mask,
            tail: 0,
            published: 0,
            cached_head: 0,
        },
        Consumer {
            shared,
            base,
            mask,
            head: 0,
            released: 0,
            cached_tail: 0,
        },
    ))
}

/// The writing end. Owned by exactly one thread at a time.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// `shared.slots`' first slot and `shared.mask`, copied here so a slot
    /// is one masked offset from a local pointer: no indirection through
    /// the `Arc` and no bounds check per slot (the mask keeps every offset
    /// inside the slots, which the `Arc` keeps alive).
    base: *const UnsafeCell<T>,
    mask: usize,
    /// Next position to write (staged, maybe not yet published).
    tail: usize,
    /// Last value stored to the shared tail.
    published: usize,
    /// Private copy of the consumer's head (never ahead of the real one).
    cached_head: usize,
}

impl<T: Copy> Producer<T> {
    /// The slot of free-running position `pos`. Writing through it is the
    /// caller's to justify (the ring protocol).
    #[inline]
    fn slot(&self, pos: usize) -> *mut T {
        slot_at(self.base, self.mask, pos)
    }

    /// Total slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Free slots now (refreshes the consumer's index from shared memory).
    #[inline]
    pub fn free_slots(&mut self) -> usize {
        self.cached_head = self.shared.head.load(Ordering::Acquire);
        self.capacity() - (self.tail - self.cached_head)
    }

    /// True if `n` slots can be staged now; touches shared memory only when
    /// the private copy of the head says there is not enough room.
    #[inline]
    pub fn has_room(&mut self, n: usize) -> bool {
        if self.capacity() - (self.tail - self.cached_head) >= n {
            return true;
        }
        self.free_slots() >= n
    }

    /// Writes `value` into the next slot without publishing it. Returns
    /// false (and writes nothing) when the ring is full.
    #[inline]
    pub fn stage(&mut self, value: T) -> bool {
        if !self.has_room(1) {
            return false;
        }
        // SAFETY: has_room proved tail - head < capacity, so the consumer
        // has released this slot and will not read it until we publish a
        // tail beyond it; we are the only producer.
        unsafe { *self.slot(self.tail) = value };
        self.tail += 1;
        true
    }

    /// Builds the next slot in place with `fill` (no copy of `T` through
    /// the stack), without publishing it. Returns false (and calls nothing)
    /// when the ring is full. The slot holds its previous value when `fill`
    /// starts; `fill` should set every field it cares about.
    #[inline]
    pub fn stage_with(&mut self, fill: impl FnOnce(&mut T)) -> bool {
        if !self.has_room(1) {
            return false;
        }
        // SAFETY: as in `stage`: the consumer has released this slot and
        // cannot read it before we publish past it, and we are the only
        // producer, so this is the only reference to it. `fill` cannot reach
        // the producer (it is mutably borrowed here), and T: Copy has no drop
        // glue, so even a panicking `fill` leaves a valid value behind.
        fill(unsafe { &mut *self.slot(self.tail) });
        self.tail += 1;
        true
    }

    /// Claims up to `want` free slots to stage in order through the
    /// returned [`Claim`], with one room check for all of them (the shared
    /// index is read only when the private copy says `want` may not fit).
    /// What the claim fills is staged when it is dropped; slots it leaves
    /// unfilled stay free.
    #[inline]
    pub fn claim(&mut self, want: usize) -> Claim<'_, T> {
        let room = if self.capacity() - (self.tail - self.cached_head) >= want {
            want
        } else {
            want.min(self.free_slots())
        };
        Claim {
            producer: self,
            room,
            filled: 0,
        }
    }

    /// Copies the longest prefix of `values` that fits into the next slots,
    /// without publishing; returns how many were staged. One room check for
    /// the whole batch.
    #[inline]
    pub fn stage_slice(&mut self, values: &[T]) -> usize {
        let n = if self.capacity() - (self.tail - self.cached_head) >= values.len() {
            values.len()
        } else {
            values.len().min(self.free_slots())
        };
        for (k, v) in values[..n].iter().enumerate() {
            // SAFETY: k < n <= capacity - (tail - head), so the consumer has
            // released this slot and will not read it before we publish past
            // it; we are the only producer.
            unsafe { *self.slot(self.tail + k) = *v };
        }
        self.tail += n;
        n
    }

    /// Staged but unpublished slots.
    #[inline]
    pub fn staged(&self) -> usize {
        self.tail - self.published
    }

    /// Makes every staged slot visible to the consumer with one
    /// release-store.
    #[inline]
    pub fn publish(&mut self) {
        if self.tail != self.published {
            self.shared.tail.store(self.tail, Ordering::Release);
            self.published = self.tail;
        }
    }

    /// Stages and publishes one value; gives it back when full.
    #[inline]
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.stage(value) {
            self.publish();
            Ok(())
        } else {
            Err(value)
        }
    }
}

/// Free slots claimed by [`Producer::claim`], filled in order without a
/// room check each; dropping the claim stages the filled ones (not
/// published: [`Producer::publish`] does that).
pub struct Claim<'a, T: Copy> {
    producer: &'a mut Producer<T>,
    /// Slots claimed.
    room: usize,
    /// Slots filled so far (the first `filled` of the claim).
    filled: usize,
}

impl<T: Copy> Claim<'_, T> {
    /// Claimed slots not filled yet.
    #[inline]
    pub fn room(&self) -> usize {
        self.room - self.filled
    }

    /// Builds the next claimed slot in place with `fill`, as
    /// [`Producer::stage_with`]. Returns false (and calls nothing) when the
    /// claim is used up.
    #[inline]
    pub fn stage_with(&mut self, fill: impl FnOnce(&mut T)) -> bool {
        if self.filled == self.room {
            return false;
        }
        let pos = self.producer.tail + self.filled;
        // SAFETY: `filled < room`, and `claim` proved at least `room` slots
        // free from `tail` on (tail - head + room <= capacity), so the
        // consumer has released this slot and cannot read it before the
        // producer publishes past it; the claim borrows the only producer
        // mutably, so this is the only reference to the slot. T: Copy has
        // no drop glue, so a panicking `fill` leaves a valid value.
        fill(unsafe { &mut *self.producer.slot(pos) });
        self.filled += 1;
        true
    }
}

impl<T: Copy> Drop for Claim<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.producer.tail += self.filled;
    }
}

/// The reading end. Owned by exactly one thread at a time.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    /// As [`Producer`]'s: the first slot and the mask, held locally.
    base: *const UnsafeCell<T>,
    mask: usize,
    /// Next position to read.
    head: usize,
    /// Last value stored to the shared head.
    released: usize,
    /// Private copy of the producer's published tail.
    cached_tail: usize,
}

impl<T: Copy> Consumer<T> {
    /// Total slots.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Readable slots: a lower bound, non-zero whenever anything is
    /// published. Re-reads the producer's tail only when the private copy
    /// says the ring is empty, so a consumer keeping up touches the shared
    /// line once per batch, not once per slot.
    #[inline]
    pub fn available(&mut self) -> usize {
        let n = self.cached_tail - self.head;
        if n > 0 {
            return n;
        }
        self.cached_tail = self.shared.tail.load(Ordering::Acquire);
        self.cached_tail - self.head
    }

    /// Slot `i` past the read position. Only valid for `i` below the last
    /// [`Consumer::available`] result; `None` otherwise.
    #[inline]
    pub fn peek(&self, i: usize) -> Option<&T> {
        if i >= self.cached_tail - self.head {
            return None;
        }
        // SAFETY: head + i < cached_tail <= published tail (acquired), so the
        // producer finished writing this slot and will not touch it until we
        // release past it; the returned borrow of `self` stops us releasing
        // while it lives.
        Some(unsafe { &*slot_at(self.base, self.mask, self.head + i) })
    }

    /// The slots below the last [`Consumer::available`] result, in order,
    /// as at most two contiguous runs: up to the end of the slot array, and
    /// from its start after the wrap (empty when there is none). Reading
    /// them costs no index check or wrap per slot.
    #[inline]
    pub fn readable(&self) -> (&[T], &[T]) {
        let n = self.cached_tail - self.head;
        let start = self.head & self.mask;
        let first = n.min(self.mask + 1 - start);
        // SAFETY: the `n` slots from `head` are published (n <= cached
        // tail - head, acquired) and the producer will not write them until
        // we release past them, which the returned borrows of `self`
        // prevent; `start + first <= capacity` and `n - first <= start`, so
        // both runs lie inside the slot array the `Arc` keeps alive.
        // `UnsafeCell<T>` has the layout of `T`, and nothing writes these
        // slots while the shared slices live.
        unsafe {
            let base = UnsafeCell::raw_get(self.base) as *const T;
            (
                std::slice::from_raw_parts(base.add(start), first),
                std::slice::from_raw_parts(base, n - first),
            )
        }
    }

    /// Marks `n` slots read (locally; [`Consumer::release`] frees them).
    /// Clamped to what is available.
    #[inline]
    pub fn advance(&mut self, n: usize) {
        self.head += n.min(self.cached_tail - self.head);
    }

    /// Gives every read slot back to the producer with one release-store.
    #[inline]
    pub fn release(&mut self) {
        if self.head != self.released {
            self.shared.head.store(self.head, Ordering::Release);
            self.released = self.head;
        }
    }

    /// Reads and releases one value.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.available() == 0 {
            return None;
        }
        let v = *self.peek(0)?;
        self.advance(1);
        self.release();
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[test]
    fn rejects_bad_capacity() {
        assert!(ring::<u64>(0).is_err());
        assert!(ring::<u64>(3).is_err());
        assert!(ring::<u64>(4).is_ok());
    }

    #[test]
    fn full_ring_refuses_and_keeps_order() {
        let (mut p, mut c) = ring::<u32>(4).unwrap();
        for i in 0..4 {
            assert!(p.stage(i));
        }
        assert!(!p.stage(99), "full ring must refuse");
        assert_eq!(c.available(), 0, "nothing published yet");
        p.publish();
        assert_eq!(c.available(), 4);
        assert_eq!(c.peek(4), None);
        assert_eq!(
            (0..4).map(|i| *c.peek(i).unwrap()).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        c.advance(2);
        assert!(!p.stage(7), "not released yet");
        c.release();
        assert!(p.stage(4) && p.stage(5));
        p.publish();
        let got: Vec<u32> = std::iter::from_fn(|| c.pop()).collect();
        assert_eq!(got, vec![2, 3, 4, 5]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Stage(u32),
        StageWith(u32),
        StageSlice(Vec<u32>),
        /// Claim room for the values, fill at most this many of them.
        Claim(Vec<u32>, usize),
        Publish,
        Read(usize),
        Release,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            any::<u32>().prop_map(Op::Stage),
            any::<u32>().prop_map(Op::StageWith),
            proptest::collection::vec(any::<u32>(), 0..12).prop_map(Op::StageSlice),
            (proptest::collection::vec(any::<u32>(), 0..12), 0usize..13).prop_map(|(vs, k)| Op::Claim(vs, k)),
            Just(Op::Publish),
            (0usize..10).prop_map(Op::Read),
            Just(Op::Release),
        ]
    }

    proptest! {
        /// Against a VecDeque model: staged items become visible only on
        /// publish, space returns only on release, order is FIFO, nothing is
        /// lost or duplicated.
        #[test]
        fn behaves_like_a_bounded_fifo(ops in proptest::collection::vec(op(), 1..300)) {
            let cap = 8;
            let (mut p, mut c) = ring::<u32>(cap).unwrap();
            let mut staged: VecDeque<u32> = VecDeque::new();
            let mut visible: VecDeque<u32> = VecDeque::new();
            let mut read_unreleased = 0usize;
            for o in ops {
                match o {
                    Op::Stage(v) => {
                        let room = cap - staged.len() - visible.len() - read_unreleased;
                        prop_assert_eq!(p.stage(v), room > 0);
                        if room > 0 { staged.push_back(v); }
                    }
                    Op::StageWith(v) => {
                        let room = cap - staged.len() - visible.len() - read_unreleased;
                        prop_assert_eq!(p.stage_with(|s| *s = v), room > 0);
                        if room > 0 { staged.push_back(v); }
                    }
                    Op::StageSlice(vs) => {
                        let room = cap - staged.len() - visible.len() - read_unreleased;
                        let n = p.stage_slice(&vs);
                        prop_assert_eq!(n, vs.len().min(room));
                        staged.extend(vs[..n].iter().copied());
                    }
                    Op::Claim(vs, k) => {
                        let room = cap - staged.len() - visible.len() - read_unreleased;
                        let mut claim = p.claim(vs.len());
                        prop_assert_eq!(claim.room(), vs.len().min(room));
                        let mut n = 0;
                        for &v in vs.iter().take(k) {
                            if !claim.stage_with(|s| *s = v) { break; }
                            n += 1;
                        }
                        prop_assert_eq!(claim.room(), vs.len().min(room) - n);
                        drop(claim);
                        prop_assert_eq!(n, vs.len().min(room).min(k));
                        staged.extend(vs[..n].iter().copied());
                    }
                    Op::Publish => { p.publish(); visible.extend(staged.drain(..)); }
                    Op::Read(n) => {
                        // Lazy refresh: at least one item is seen whenever any
                        // is published, never more than are published.
                        let avail = c.available();
                        prop_assert!(avail <= visible.len());
                        prop_assert_eq!(avail == 0, visible.is_empty());
                        let (a, b) = c.readable();
                        let runs: Vec<u32> = a.iter().chain(b).copied().collect();
                        let model: Vec<u32> = visible.iter().take(avail).copied().collect();
                        prop_assert_eq!(runs, model);
                        let n = n.min(avail);
                        for (i, v) in visible.iter().take(n).enumerate() {
                            prop_assert_eq!(*c.peek(i).unwrap(), *v);
                        }
                        c.advance(n);
                        visible.drain(..n);
                        read_unreleased += n;
                    }
                    Op::Release => { c.release(); read_unreleased = 0; }
                }
            }
        }
    }

    #[test]
    fn two_threads_transfer_in_order() {
        let (mut p, mut c) = ring::<u64>(64).unwrap();
        const N: u64 = 200_000;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                let mut k = 0;
                while k < 7 && i < N && p.stage(i) {
                    i += 1;
                    k += 1;
                }
                p.publish();
                std::hint::spin_loop();
            }
        });
        let mut expect = 0;
        while expect < N {
            let n = c.available();
            for j in 0..n {
                assert_eq!(*c.peek(j).unwrap(), expect);
                expect += 1;
            }
            c.advance(n);
            c.release();
        }
        t.join().unwrap();
    }
}
