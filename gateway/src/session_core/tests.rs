//! The session core message by message, without sockets or rings.

use super::*;
use crate::directory::SessionCredential;
use crate::options::GAP_REPORT_REPEAT_NS;
use peregrine_wire::alpha::checked_alpha_field;
use peregrine_wire::message::{Ack, Echo, Reject};
use std::net::SocketAddr;
use std::time::Duration;
use zerocopy::{FromBytes, IntoBytes};

const SECRET: &str = "pw";

fn name(s: &str) -> SessionName {
    checked_alpha_field(s).unwrap()
}

fn directory() -> Arc<SessionDirectory> {
    let creds: Vec<SessionCredential> = ["A", "B"]
        .iter()
        .map(|n| SessionCredential {
            name: name(n),
            secret: checked_alpha_field(SECRET).unwrap(),
        })
        .collect();
    Arc::new(SessionDirectory::new(&creds).unwrap())
}

fn opts() -> GatewayOptions {
    GatewayOptions {
        reply_log_depth: 16,
        reorder_window: 4,
        busy_after: Duration::from_millis(5),
        ..GatewayOptions::default()
    }
}

fn addr(port: u16) -> Peer {
    Peer::Addr(SocketAddr::from(([127, 0, 0, 1], port)))
}

fn login_req(session: &str, secret: &str, peer: Peer) -> LoginRequest {
    LoginRequest {
        name: name(session),
        secret: checked_alpha_field(secret).unwrap(),
        peer,
    }
}

/// A core with session "A" logged in from `addr(1)`; returns its id.
fn logged_in(opts: GatewayOptions) -> (SessionCore, u32) {
    let mut core = SessionCore::new(0, directory(), &opts, true);
    core.set_now(1_000);
    match core.login(&login_req("A", SECRET, addr(1)), Replay::BestEffort(0)) {
        LoginVerdict::Accepted { session, .. } => (core, session),
        v => panic!("login refused: {v:?}"),
    }
}

fn echo(tag: u64) -> [u8; MESSAGE_LEN] {
    let mut m = [0u8; MESSAGE_LEN];
    m.copy_from_slice(Echo::new(0, tag).as_bytes());
    m
}

/// The application's reply to client message `client_seq`, as the reply
/// path logs it.
fn reply_to(core: &mut SessionCore, id: u32, client_seq: u64) -> u64 {
    let mut a = Ack::empty();
    a.client_seq.set(client_seq);
    let bytes: [u8; MESSAGE_LEN] = zerocopy::transmute!(a);
    let s = core.sessions.get_mut(id).unwrap();
    let seq = s.next_reply_seq;
    s.log_reply(seq, &bytes);
    s.next_reply_seq += 1;
    seq
}

fn stage(core: &mut SessionCore, id: u32, client_seq: u64) {
    assert_eq!(
        core.inbound(id, client_seq, &echo(client_seq), true),
        Action::Stage { client_seq }
    );
}

#[test]
fn login_binds_and_relogin_from_elsewhere_follows_the_policy() {
    let (mut core, a) = logged_in(opts());
    assert_eq!(core.bound_session(addr(1), &name("A")), Some(a));
    assert_eq!(core.bound_session(addr(2), &name("A")), None);
    // Live on addr(1): a login from addr(2) is refused under Reject.
    assert_eq!(
        core.login(&login_req("A", SECRET, addr(2)), Replay::BestEffort(0)),
        LoginVerdict::Rejected(LoginError::Unavailable)
    );
    assert_eq!(
        core.login(&login_req("A", "nope", addr(1)), Replay::BestEffort(0)),
        LoginVerdict::Rejected(LoginError::NotAuthorised)
    );
    assert_eq!(
        core.login(&login_req("Z", SECRET, addr(1)), Replay::BestEffort(0)),
        LoginVerdict::Rejected(LoginError::NotAuthorised)
    );
    assert_eq!(core.counters().logins_rejected, 3);
    // The same address logs in again: resumes where it was.
    stage(&mut core, a, 1);
    assert_eq!(
        core.login(&login_req("A", SECRET, addr(1)), Replay::BestEffort(0)),
        LoginVerdict::Accepted {
            session: a,
            next_client_seq: 2,
            next_reply_seq: 1,
            taken_over: None
        }
    );
    assert_eq!((core.counters().logins, core.counters().sessions), (2, 1));
    // Silent past the idle timeout: another address may take it.
    core.set_now(1_000 + nanos(opts().idle_timeout) + 1);
    assert!(matches!(
        core.login(&login_req("A", SECRET, addr(2)), Replay::BestEffort(0)),
        LoginVerdict::Accepted { taken_over: None, .. }
    ));
    assert_eq!(core.bound_session(addr(2), &name("A")), Some(a));
}

#[test]
fn takeover_policy_rebinds_a_live_session_and_names_the_old_peer() {
    let (mut core, a) = logged_in(GatewayOptions {
        login_policy: LoginPolicy::TakeOver,
        ..opts()
    });
    assert_eq!(
        core.login(&login_req("A", SECRET, addr(2)), Replay::BestEffort(0)),
        LoginVerdict::Accepted {
            session: a,
            next_client_seq: 1,
            next_reply_seq: 1,
            taken_over: Some(addr(1))
        }
    );
    assert_eq!(core.counters().logins_taken_over, 1);
    assert_eq!(core.bound_session(addr(1), &name("A")), None);
}

#[test]
fn strict_replay_refuses_a_login_the_log_cannot_serve() {
    let (mut core, a) = logged_in(GatewayOptions {
        reply_log_depth: 2,
        ..opts()
    });
    core.unbind(a, addr(1));
    for k in 1..=4 {
        reply_to(&mut core, a, k);
    }
    // Replies 3 and 4 are kept, 1 and 2 are not.
    assert_eq!(
        core.login(&login_req("A", SECRET, addr(1)), Replay::Strict(2)),
        LoginVerdict::Rejected(LoginError::Unavailable)
    );
    assert!(matches!(
        core.login(&login_req("A", SECRET, addr(1)), Replay::Strict(3)),
        LoginVerdict::Accepted {
            next_reply_seq: 5,
            ..
        }
    ));
}

#[test]
fn a_copy_is_answered_with_its_original_replies_never_staged_twice() {
    let (mut core, a) = logged_in(opts());
    stage(&mut core, a, 1);
    stage(&mut core, a, 2);
    let first = reply_to(&mut core, a, 1);
    reply_to(&mut core, a, 1); // a second reply to message 1
    reply_to(&mut core, a, 2);
    assert_eq!(
        core.inbound(a, 1, &echo(1), true),
        Action::ResendReplies {
            first,
            end: first + 2
        }
    );
    assert_eq!(core.counters().accepted, 2);
    assert_eq!(core.counters().dedup_hits, 1);
    // Taken but not yet answered: its reply will answer the copy too.
    stage(&mut core, a, 3);
    assert_eq!(core.inbound(a, 3, &echo(3), true), Action::Ignore);
    assert_eq!(core.session(a).unwrap().next_client_seq, 4);
}

#[test]
fn a_copy_whose_answer_is_gone_is_too_old() {
    let (mut core, a) = logged_in(GatewayOptions {
        reply_log_depth: 2,
        ..opts()
    });
    for k in 1..=3 {
        stage(&mut core, a, k);
        reply_to(&mut core, a, k);
    }
    assert!(matches!(
        core.inbound(a, 2, &echo(2), true),
        Action::ResendReplies { .. }
    ));
    assert_eq!(
        core.inbound(a, 1, &echo(1), true),
        Action::Refuse {
            reason: RejectReason::TooOld,
            client_seq: 1
        }
    );
    assert_eq!(core.counters().rejected_too_old, 1);
    // TooOld answers a copy: it is not kept in the reject log.
    assert!(core.session(a).unwrap().rejects.find(1).is_none());
    let _ = core.reject_message(a, &echo(1), RejectReason::TooOld, 1);
    assert!(core.session(a).unwrap().rejects.find(1).is_none());
}

#[test]
fn a_refused_message_retransmitted_gets_the_same_reject_from_the_log() {
    let (mut core, a) = logged_in(opts());
    let mut bad = echo(1);
    bad[1] = 99; // unsupported layout version
    let action = core.inbound(a, 1, &bad, true);
    assert_eq!(
        action,
        Action::Reject {
            reason: RejectReason::UnsupportedVersion,
            client_seq: 1
        }
    );
    assert_eq!(core.counters().rejected_bad_version, 1);
    let (peer, session, sent) = core
        .reject_message(a, &bad, RejectReason::UnsupportedVersion, 1)
        .unwrap();
    assert_eq!((peer, session), (addr(1), name("A")));
    let r = Reject::read_from_bytes(&sent).unwrap();
    assert_eq!(
        (r.reason.get(), r.client_seq.get(), r.gateway_rx_ns.get()),
        (RejectReason::UnsupportedVersion as u16, 1, 1_000)
    );
    assert_eq!(core.inbound(a, 1, &bad, true), Action::ResendReject(sent));
    // Gap and Busy refusals do not take a number and are not logged.
    let _ = core.reject_message(a, &echo(2), RejectReason::SequenceGap, 2);
    let _ = core.reject_message(a, &echo(3), RejectReason::Busy, 3);
    let s = core.session(a).unwrap();
    assert!(s.rejects.find(2).is_none() && s.rejects.find(3).is_none());
    // A session without a peer: nothing to send, counted.
    core.unbind(a, addr(1));
    assert!(core
        .reject_message(a, &bad, RejectReason::WrongLength, 4)
        .is_none());
    assert_eq!(core.counters().replies_unroutable, 1);
}

#[test]
fn messages_ahead_of_a_gap_are_held_then_taken_in_order() {
    let (mut core, a) = logged_in(opts());
    assert_eq!(core.inbound(a, 3, &echo(3), true), Action::Hold);
    assert_eq!(core.inbound(a, 2, &echo(2), true), Action::Hold);
    assert_eq!(core.inbound(a, 3, &echo(3), true), Action::Ignore, "held copy");
    assert_eq!(core.counters().reordered_held, 2);
    // Nothing follows on yet.
    assert!(core.take_held(a, true).is_none());
    stage(&mut core, a, 1);
    // No room: held messages stay held.
    assert!(core.take_held(a, false).is_none());
    let (action, msg, len) = core.take_held(a, true).unwrap();
    assert_eq!(action, Action::Stage { client_seq: 2 });
    assert_eq!(&msg[..len], &echo(2));
    assert_eq!(
        core.take_held(a, true).unwrap().0,
        Action::Stage { client_seq: 3 }
    );
    assert!(core.take_held(a, true).is_none());
    assert_eq!(core.session(a).unwrap().next_client_seq, 4);
    assert_eq!(core.counters().accepted, 3);
}

#[test]
fn past_the_window_is_refused_and_the_gap_reported_paced() {
    let (mut core, a) = logged_in(opts());
    // Window 4: expected 1, so 6 is beyond it.
    let gap = Action::Refuse {
        reason: RejectReason::SequenceGap,
        client_seq: 1,
    };
    assert_eq!(core.inbound(a, 6, &echo(6), true), gap, "names the missing one");
    assert_eq!(
        core.inbound(a, 7, &echo(7), true),
        Action::Ignore,
        "reported already"
    );
    assert_eq!(core.counters().rejected_gap, 2);
    assert_eq!(core.counters().dropped_gap, 1);
    assert_eq!(core.counters().gap_notices, 1);
    // Held messages left behind a gap: reported again only once due.
    assert_eq!(core.inbound(a, 3, &echo(3), true), Action::Hold);
    assert_eq!(core.gap_after_datagram(a), Action::Ignore);
    core.set_now(1_000 + GAP_REPORT_REPEAT_NS);
    assert_eq!(core.gap_after_datagram(a), gap);
    assert_eq!(core.gap_after_datagram(a), Action::Ignore);
    // A new gap is reported at once.
    stage(&mut core, a, 1);
    assert_eq!(
        core.gap_after_datagram(a),
        Action::Refuse {
            reason: RejectReason::SequenceGap,
            client_seq: 2
        }
    );
    // Nothing held: nothing to report.
    let (mut core, a) = logged_in(opts());
    assert_eq!(core.gap_after_datagram(a), Action::Ignore);
}

#[test]
fn the_rate_limit_refuses_messages_over_it_and_they_keep_their_number() {
    let (mut core, a) = logged_in(GatewayOptions {
        rate_limit: RateLimit {
            per_second: 1,
            burst: 2,
        },
        ..opts()
    });
    // A fresh session starts with a full bucket (capped at the burst).
    stage(&mut core, a, 1);
    stage(&mut core, a, 2);
    let limited = Action::Reject {
        reason: RejectReason::RateLimited,
        client_seq: 3,
    };
    assert_eq!(core.inbound(a, 3, &echo(3), true), limited);
    assert_eq!(core.counters().rejected_rate_limited, 1);
    // One second later one more message is allowed.
    core.set_now(1_000 + 1_000_000_000);
    stage(&mut core, a, 4);
    // Malformed messages are refused for that and take no token.
    assert!(matches!(
        core.inbound(a, 5, &[0u8; 3], true),
        Action::Reject { .. }
    ));
    assert!(matches!(
        core.inbound(a, 6, &echo(6), true),
        Action::Reject { .. }
    ));
    assert_eq!(core.counters().rejected_rate_limited, 2);
}

#[test]
fn a_full_ring_waits_then_turns_busy() {
    let (mut core, a) = logged_in(opts());
    assert_eq!(core.inbound(a, 1, &echo(1), false), Action::RingFull);
    assert_eq!(core.session(a).unwrap().next_client_seq, 1, "nothing consumed");
    assert_eq!(core.counters().ring_full, 1);
    let t0 = 50_000_000;
    let busy_after = nanos(opts().busy_after);
    assert_eq!(core.ring_full(t0), Backpressure::Wait);
    assert_eq!(core.ring_full(t0 + busy_after - 1), Backpressure::Wait);
    assert_eq!(core.ring_full(t0 + busy_after), Backpressure::Busy);
    core.refused_busy(3);
    assert_eq!(
        (core.counters().rejected_busy, core.counters().rx_messages),
        (3, 3)
    );
    // A message taken ends the stretch: the clock starts again.
    stage(&mut core, a, 1);
    assert_eq!(core.ring_full(t0 + 2 * busy_after), Backpressure::Wait);
    // Implicit sequences (streams) take the next number.
    assert_eq!(
        core.inbound_next(a, &echo(2), true),
        Action::Stage { client_seq: 2 }
    );
    assert_eq!(core.inbound_next(a, &echo(3), false), Action::RingFull);
}

#[test]
fn a_reply_request_gets_exactly_what_is_kept_and_names_what_is_gone() {
    let (mut core, a) = logged_in(GatewayOptions {
        reply_log_depth: 4,
        ..opts()
    });
    for k in 1..=8 {
        reply_to(&mut core, a, k);
    }
    // Kept: 5..=8; next reply 9.
    let range = |core: &mut SessionCore, from, count| core.reply_range(a, from, count, 896).unwrap();
    let gone = |first, end| ReplyRange {
        first,
        end,
        gone_before: Some(5),
    };
    let kept = |first, end| ReplyRange {
        first,
        end,
        gone_before: None,
    };
    // All gone: nothing resent (never 5..=7 in place of 1..=3).
    assert_eq!(range(&mut core, 1, 3), gone(5, 5));
    // Partly gone: exactly the kept part of the request.
    assert_eq!(range(&mut core, 3, 4), gone(5, 7));
    // All kept; past the end cut at the next reply; from past it nothing.
    assert_eq!(range(&mut core, 6, 2), kept(6, 8));
    assert_eq!(range(&mut core, 7, 50), kept(7, 9));
    assert_eq!(range(&mut core, 20, 4), kept(20, 20));
    // At most `max` from the requested first one.
    assert_eq!(core.reply_range(a, 5, 100, 2).unwrap(), kept(5, 7));
    assert_eq!(core.counters().replies_gone, 2);
    assert_eq!(core.reply_range(99, 1, 1, 896), None);
}

/// What one datagram's blocks turned into, in order: each decision with
/// the tag of the block it staged (0 for other decisions).
type Decisions = Vec<(Action, u64)>;

/// A block for the run-equivalence test: kind 0 is a good Echo tagged
/// `tag`, kind 1 a short block, kind 2 an unknown type.
fn test_block(kind: u8, tag: u64) -> Vec<u8> {
    match kind {
        0 => echo(tag).to_vec(),
        1 => vec![0u8; 7],
        _ => {
            let mut m = echo(tag);
            m[0] = 0xEE;
            m.to_vec()
        }
    }
}

fn tag_of(block: &[u8]) -> u64 {
    Echo::read_from_bytes(block).map_or(0, |e| e.client_tag.get())
}

/// One datagram as the UDP gateway decides it, into an input ring with
/// room for `ring` messages (at least 1) per attempt: held messages first,
/// then (with `with_run`) the in-order run, then every remaining block one
/// by one, each staged or rejected one followed by the held ones it frees.
/// A full ring stops the attempt at that block; the next attempt (the
/// sequencer drained the ring) resumes from it, as the gateway does.
fn decide_datagram(
    core: &mut SessionCore,
    id: u32,
    first: u64,
    blocks: &[Vec<u8>],
    ring: usize,
    with_run: bool,
) -> Decisions {
    let mut out = Decisions::new();
    let drain = |core: &mut SessionCore, out: &mut Decisions, staged: &mut usize| {
        while let Some((action, msg, len)) = core.take_held(id, *staged < ring) {
            *staged += usize::from(matches!(action, Action::Stage { .. }));
            out.push((action, tag_of(&msg[..len])));
        }
    };
    let mut start = 0usize;
    for _attempt in 0..10_000 {
        let mut staged = 0usize;
        drain(core, &mut out, &mut staged);
        let mut it = blocks[start..].iter().map(|b| &b[..]);
        let run = if with_run {
            let room = ring - staged.min(ring);
            core.take_in_order_run(id, first + start as u64, &mut it, room, |client_seq, block| {
                staged += 1;
                out.push((Action::Stage { client_seq }, tag_of(block)))
            })
        } else {
            0
        };
        let mut stopped_at = None;
        for (k, block) in it.enumerate().map(|(i, b)| (start + run + i, b)) {
            let action = core.inbound(id, first + k as u64, block, staged < ring);
            if action == Action::RingFull {
                let now = core.now();
                core.ring_full(now);
                out.push((action, 0));
                stopped_at = Some(k);
                break;
            }
            let took = matches!(action, Action::Stage { .. });
            staged += usize::from(took);
            out.push((action, if took { tag_of(block) } else { 0 }));
            if took || matches!(action, Action::Reject { .. }) {
                drain(core, &mut out, &mut staged);
            }
        }
        match stopped_at {
            Some(k) => start = k,
            None => {
                out.push((core.gap_after_datagram(id), 0));
                return out;
            }
        }
    }
    panic!("a datagram that never finishes");
}

proptest::proptest! {
    /// The in-order run decides every datagram exactly as the core does
    /// message by message: the same actions for the same blocks, the same
    /// counters, expected sequence, last staged message and full-ring
    /// clock, across duplicates, gaps, held messages, malformed blocks, the
    /// rate limit and a ring that fills part-way through a datagram.
    #[test]
    fn the_in_order_run_decides_as_message_by_message(
        datagrams in proptest::collection::vec(
            (
                -4i64..8,
                proptest::collection::vec(0u8..8, 1..15),
                0u64..600_000_000,
                1usize..20,
            ),
            1..60,
        )
    ) {
        let limited = GatewayOptions {
            rate_limit: RateLimit { per_second: 20, burst: 12 },
            ..opts()
        };
        let (mut one_by_one, a) = logged_in(limited.clone());
        let (mut with_run, b) = logged_in(limited);
        let mut now = 1_000u64;
        let mut tag = 1u64;
        for (offset, kinds, dt, ring) in datagrams {
            now += dt;
            one_by_one.set_now(now);
            with_run.set_now(now);
            let expected = one_by_one.session(a).unwrap().next_client_seq as i64;
            let first = (expected + offset).max(1) as u64;
            // Kinds 0..=5 are good messages, 6 a short block, 7 an
            // unknown type, so most datagrams are clean.
            let blocks: Vec<Vec<u8>> = kinds
                .iter()
                .map(|&k| {
                    tag += 1;
                    test_block(k.saturating_sub(5), tag)
                })
                .collect();
            let want = decide_datagram(&mut one_by_one, a, first, &blocks, ring, false);
            let got = decide_datagram(&mut with_run, b, first, &blocks, ring, true);
            proptest::prop_assert_eq!(got, want);
            proptest::prop_assert_eq!(with_run.counters().values(), one_by_one.counters().values());
            let (sa, sb) = (one_by_one.session(a).unwrap(), with_run.session(b).unwrap());
            proptest::prop_assert_eq!(sb.next_client_seq, sa.next_client_seq);
            proptest::prop_assert_eq!(sb.last_staged, sa.last_staged);
            proptest::prop_assert_eq!(with_run.full_since_ns, one_by_one.full_since_ns);
        }
    }
}

#[test]
fn the_in_order_run_stops_at_the_room_and_at_what_needs_a_decision() {
    let (mut core, a) = logged_in(opts());
    let blocks = [echo(1).to_vec(), echo(2).to_vec(), vec![0u8; 3], echo(4).to_vec()];
    let mut staged = Vec::new();
    let mut it = blocks.iter().map(|b| &b[..]);
    // Room for one: one taken, the iterator left at the second.
    let n = core.take_in_order_run(a, 1, &mut it, 1, |seq, b| staged.push((seq, tag_of(b))));
    assert_eq!(n, 1);
    // Not the expected sequence: nothing taken, nothing consumed.
    assert_eq!(
        core.take_in_order_run(a, 5, &mut it, 10, |_, _| panic!("staged")),
        0
    );
    // The short block stops the run and stays next.
    let n = core.take_in_order_run(a, 2, &mut it, 10, |seq, b| staged.push((seq, tag_of(b))));
    assert_eq!(n, 1);
    assert_eq!(staged, vec![(1, 1), (2, 2)]);
    assert_eq!(it.next().map(<[u8]>::len), Some(3));
    assert_eq!(core.counters().accepted, 2);
    assert_eq!(core.session(a).unwrap().next_client_seq, 3);
    // A held message makes every datagram a one-by-one decision.
    assert_eq!(core.inbound(a, 4, &echo(4), true), Action::Hold);
    let held_blocks = [echo(3).to_vec()];
    let mut it = held_blocks.iter().map(|b| &b[..]);
    assert_eq!(
        core.take_in_order_run(a, 3, &mut it, 10, |_, _| panic!("staged")),
        0
    );
}
