//! The configured sessions: who may log in, with what secret, and which
//! gateway holds each session's state.
//!
//! Why a directory shared by every gateway: a session's id must not depend
//! on arrival order or on the gateway it reaches, so the dedup tables, reply
//! sequences and engine session ids it keys survive a restart. Ids are the
//! sessions' positions in the configuration. A session's state (expected
//! client sequence, reply log) lives in exactly one gateway, the first one
//! it logs in on; that gateway is recorded here with one compare-and-swap
//! (at login, never per message) and is restored from the journal on
//! restart. A login on another gateway is refused (`S`), because answering
//! it there would split the session's dedup state.
//!
//! Secrets travel in the clear, as SoupBinTCP passwords do: the login proves
//! who configured the client, and the source-address binding keeps others
//! from injecting into a UDP session afterwards. Run the service on a
//! private network segment, as exchanges do.

use crate::fxhash::FastMap;
use peregrine_wire::moldudp64::SessionName;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of a secret on the wire (SoupBinTCP password: alpha 10).
pub const SECRET_LEN: usize = 10;

/// A session's credentials as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCredential {
    /// Session name (MoldUDP64 session field; SoupBinTCP session, or
    /// username when the requested session is blank).
    pub name: SessionName,
    /// Secret, ASCII, space padded to 10 bytes.
    pub secret: [u8; SECRET_LEN],
}

/// What a second login to a session that is live elsewhere gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoginPolicy {
    /// Refused with `S` (session not available); the live one keeps it.
    #[default]
    Reject,
    /// Accepted; the previous connection is closed (TCP) or the session is
    /// rebound to the new source address (UDP).
    TakeOver,
}

/// Why a login was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Unknown session or wrong secret (`A`).
    #[error("not authorised")]
    NotAuthorised,
    /// The session is live elsewhere or held by another gateway (`S`).
    #[error("session not available")]
    Unavailable,
}

impl LoginError {
    /// The reason byte SoupBinTCP and our UDP LoginRejected carry.
    pub fn code(self) -> u8 {
        match self {
            LoginError::NotAuthorised => b'A',
            LoginError::Unavailable => b'S',
        }
    }
}

/// A configuration problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The same session name twice.
    #[error("session {0:?} is configured twice")]
    Duplicate(String),
}

const NO_OWNER: u32 = 0;

struct Entry {
    cred: SessionCredential,
    /// Owning gateway id + 1; 0 while no gateway holds the session.
    owner: AtomicU32,
}

/// The configured sessions, shared read-only by every gateway (plus one
/// atomic owner per session).
pub struct SessionDirectory {
    entries: Vec<Entry>,
    by_name: FastMap<SessionName, u32>,
}

impl std::fmt::Debug for SessionDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDirectory")
            .field("sessions", &self.entries.len())
            .finish()
    }
}

/// Compares two secrets in time independent of where they differ.
fn secrets_equal(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl SessionDirectory {
    /// A directory of `sessions`; ids are their positions.
    pub fn new(sessions: &[SessionCredential]) -> Result<SessionDirectory, DirectoryError> {
        let mut by_name = FastMap::default();
        let mut entries = Vec::with_capacity(sessions.len());
        for (i, c) in sessions.iter().enumerate() {
            let shown = String::from_utf8_lossy(&c.name).trim_end().to_string();
            if by_name.insert(c.name, i as u32).is_some() {
                return Err(DirectoryError::Duplicate(shown));
            }
            entries.push(Entry {
                cred: *c,
                owner: AtomicU32::new(NO_OWNER),
            });
        }
        Ok(SessionDirectory { entries, by_name })
    }

    /// Number of configured sessions (ids are `0..len`).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no session is configured (nobody can log in).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The id of session `name`, if configured.
    #[inline]
    pub fn id(&self, name: &SessionName) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// Session `id`'s name.
    pub fn name(&self, id: u32) -> Option<SessionName> {
        self.entries.get(id as usize).map(|e| e.cred.name)
    }

    /// Checks `name`/`secret` and claims the session for `gateway` if no
    /// gateway holds it yet. Returns the session id.
    pub fn authenticate(
        &self,
        name: &SessionName,
        secret: &[u8; SECRET_LEN],
        gateway: u16,
    ) -> Result<u32, LoginError> {
        let id = self.id(name).ok_or(LoginError::NotAuthorised)?;
        let e = &self.entries[id as usize];
        if !secrets_equal(&e.cred.secret, secret) {
            return Err(LoginError::NotAuthorised);
        }
        if self.claim(id, gateway) {
            Ok(id)
        } else {
            Err(LoginError::Unavailable)
        }
    }

    /// Makes `gateway` the holder of session `id` unless another gateway
    /// already is; true when `gateway` holds it afterwards.
    pub fn claim(&self, id: u32, gateway: u16) -> bool {
        let Some(e) = self.entries.get(id as usize) else {
            return false;
        };
        let me = gateway as u32 + 1;
        match e
            .owner
            .compare_exchange(NO_OWNER, me, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(current) => current == me,
        }
    }

    /// The gateway holding session `id`, if any.
    pub fn owner(&self, id: u32) -> Option<u16> {
        let o = self.entries.get(id as usize)?.owner.load(Ordering::Acquire);
        (o != NO_OWNER).then(|| (o - 1) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peregrine_wire::alpha::checked_alpha_field;

    fn dir() -> SessionDirectory {
        SessionDirectory::new(&[
            SessionCredential {
                name: checked_alpha_field("ALPHA").unwrap(),
                secret: checked_alpha_field("s3cret").unwrap(),
            },
            SessionCredential {
                name: checked_alpha_field("BETA").unwrap(),
                secret: checked_alpha_field("other").unwrap(),
            },
        ])
        .unwrap()
    }

    #[test]
    fn login_checks_name_and_secret_and_pins_the_session_to_one_gateway() {
        let d = dir();
        let (a, b) = (
            checked_alpha_field::<10>("ALPHA").unwrap(),
            checked_alpha_field::<10>("BETA").unwrap(),
        );
        assert_eq!(
            d.authenticate(&a, &checked_alpha_field("s3cret").unwrap(), 0),
            Ok(0)
        );
        assert_eq!(
            d.authenticate(&a, &checked_alpha_field("s3creT").unwrap(), 0),
            Err(LoginError::NotAuthorised)
        );
        assert_eq!(
            d.authenticate(
                &checked_alpha_field("GAMMA").unwrap(),
                &checked_alpha_field("s3cret").unwrap(),
                0
            ),
            Err(LoginError::NotAuthorised)
        );
        assert_eq!(
            d.authenticate(&a, &checked_alpha_field("s3cret").unwrap(), 1),
            Err(LoginError::Unavailable),
            "held by gateway 0"
        );
        assert_eq!(
            d.authenticate(&a, &checked_alpha_field("s3cret").unwrap(), 0),
            Ok(0),
            "again on its own"
        );
        assert_eq!(d.owner(0), Some(0));
        assert_eq!(d.owner(1), None);
        assert_eq!(
            d.authenticate(&b, &checked_alpha_field("other").unwrap(), 3),
            Ok(1)
        );
        assert_eq!(d.owner(1), Some(3));
    }

    #[test]
    fn bad_configuration_is_refused() {
        let c = SessionCredential {
            name: checked_alpha_field("A").unwrap(),
            secret: checked_alpha_field("x").unwrap(),
        };
        assert!(matches!(
            SessionDirectory::new(&[c, c]),
            Err(DirectoryError::Duplicate(_))
        ));
        assert!(checked_alpha_field::<10>("").is_err());
        assert!(checked_alpha_field::<10>("elevenchars").is_err());
        assert!(checked_alpha_field::<10>("has space").is_err());
        assert_eq!(&checked_alpha_field::<10>("ok").unwrap(), b"ok        ");
    }
}
