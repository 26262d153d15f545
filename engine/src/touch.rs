//! Which cache lines and pages of the engine's structures an operation
//! touches: a census for the benchmarks (cargo feature `touch-count`).
//!
//! Why: an operation's latency on a large book is set less by the
//! instructions it runs than by the cache lines it must bring in, so the
//! number worth knowing per operation kind is how many distinct lines (and
//! pages, for the TLB) of the order pool, the id index, the price levels
//! and the level bitmap it reads or writes. With the feature, every access
//! to those structures records the lines it spans in a per-thread list
//! (which allocates: a diagnostic build, never a production one);
//! [`take`] counts and clears it. Without the feature [`ENABLED`] is false,
//! recording is an empty inline function, and [`take`] returns zeros.
//!
//! Not counted: the engine's and each book's own fields (a few lines read
//! by every operation, always cached), the command and the report sink.

/// Whether this build counts touches (feature `touch-count`).
pub const ENABLED: bool = cfg!(feature = "touch-count");

/// Cache-line and page size the census assumes, bytes.
pub const LINE_BYTES: usize = 64;
/// Page size the census assumes, bytes.
pub const PAGE_BYTES: usize = 4096;

/// The structures counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Structure {
    /// The order pool (one slot per resting order).
    Pool = 0,
    /// The `(session, order id)` index.
    Index = 1,
    /// The price levels (one per tick of the band, per side).
    Levels = 2,
    /// The bitmap of non-empty levels.
    Bitmap = 3,
}

impl Structure {
    /// Every structure, in order.
    pub const ALL: [Structure; 4] = [
        Structure::Pool,
        Structure::Index,
        Structure::Levels,
        Structure::Bitmap,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Structure::Pool => "pool",
            Structure::Index => "index",
            Structure::Levels => "levels",
            Structure::Bitmap => "bitmap",
        }
    }
}

/// What one operation touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touches {
    /// Distinct cache lines.
    pub lines: u32,
    /// Distinct pages.
    pub pages: u32,
    /// Distinct cache lines of each [`Structure`], indexed by it.
    pub lines_in: [u32; 4],
}

#[cfg(feature = "touch-count")]
thread_local! {
    static LINES: std::cell::RefCell<Vec<(usize, Structure)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Records that `value`, in structure `s`, was read or written: every cache
/// line it spans.
#[inline(always)]
pub(crate) fn record<T: ?Sized>(s: Structure, value: &T) {
    #[cfg(feature = "touch-count")]
    {
        let start = (value as *const T).cast::<u8>() as usize;
        let last = start + std::mem::size_of_val(value).max(1) - 1;
        LINES.with(|l| {
            let mut l = l.borrow_mut();
            for line in start / LINE_BYTES..=last / LINE_BYTES {
                l.push((line, s));
            }
        });
    }
    #[cfg(not(feature = "touch-count"))]
    let _ = (s, value);
}

/// The distinct lines and pages recorded on this thread since the last
/// call, which forgets them (call it once before the operation to start
/// clean, once after to read it).
pub fn take() -> Touches {
    #[cfg(feature = "touch-count")]
    {
        LINES.with(|l| {
            let mut l = l.borrow_mut();
            l.sort_unstable();
            l.dedup_by_key(|(line, _)| *line);
            let per_page = PAGE_BYTES / LINE_BYTES;
            let mut t = Touches {
                lines: l.len() as u32,
                ..Touches::default()
            };
            let mut last_page = None;
            for &(line, s) in l.iter() {
                t.lines_in[s as usize] += 1;
                let page = line / per_page;
                if last_page != Some(page) {
                    t.pages += 1;
                    last_page = Some(page);
                }
            }
            l.clear();
            t
        })
    }
    #[cfg(not(feature = "touch-count"))]
    Touches::default()
}

#[cfg(all(test, feature = "touch-count"))]
mod tests {
    use super::*;

    #[test]
    fn distinct_lines_and_pages_are_counted_once() {
        #[derive(Clone, Copy)]
        #[repr(C, align(64))]
        struct Line([u8; 64]);
        #[repr(C, align(4096))]
        struct Page([Line; 64]);
        let pages: Vec<Page> = (0..3).map(|_| Page([Line([0; 64]); 64])).collect();
        take();
        record(Structure::Pool, &pages[0].0[0]);
        record(Structure::Pool, &pages[0].0[0]); // the same line again
        record(Structure::Index, &pages[0].0[1].0[10]); // one byte of the next line
        record(Structure::Levels, &pages[2].0[5]); // another page
        assert_eq!(
            take(),
            Touches {
                lines: 3,
                pages: 2,
                lines_in: [1, 1, 1, 0]
            }
        );
        assert_eq!(take(), Touches::default(), "take forgets");
        // A value spanning two lines counts both.
        record(Structure::Bitmap, &pages[1].0[4..6]);
        assert_eq!(
            take(),
            Touches {
                lines: 2,
                pages: 1,
                lines_in: [0, 0, 0, 2]
            }
        );
    }

    #[test]
    fn a_cancel_touches_its_index_entry_its_order_and_its_level() {
        use crate::*;
        let mut engine = Engine::new(&EngineConfig::sample()).unwrap();
        let order = |order_id, price| NewOrder {
            session: 7,
            order_id,
            instrument: 1,
            side: Side::Buy,
            kind: OrderKind::Limit,
            tif: TimeInForce::Gtc,
            post_only: false,
            stp: SelfTradePrevention::None,
            price,
            quantity: 10,
        };
        let mut reports: Vec<(u32, Report)> = Vec::new();
        engine.new_order(&order(1, 100), &mut reports);
        engine.new_order(&order(2, 90), &mut reports);
        take();
        engine.apply(
            &Command::Cancel(Cancel {
                session: 7,
                order_id: 2,
                instrument: 1,
            }),
            &mut reports,
        );
        let t = take();
        let [pool, index, levels, bitmap] = t.lines_in;
        assert!(pool >= 1 && index >= 1 && levels >= 1, "{t:?}");
        // Its level empties: the bitmap is cleared (the best level stays).
        assert!(bitmap >= 1, "{t:?}");
        assert_eq!(t.lines, pool + index + levels + bitmap);
    }
}
