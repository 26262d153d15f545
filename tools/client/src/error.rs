//! The client's errors: typed so an application can tell a refused login
//! (fix the configuration) from a network failure (retry, fail over).

use crate::event::LoginRejection;
use std::io;

/// What went wrong in a client call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The secret cannot be sent (empty, longer than 10 bytes, or not
    /// printable ASCII without spaces).
    #[error("secret {0}")]
    BadSecret(&'static str),
    /// No server address was given.
    #[error("no server address")]
    NoServer,
    /// The server refused a session's login.
    #[error("login of session {session} rejected: {reason}")]
    LoginRejected {
        /// The session's name.
        session: String,
        /// Why.
        reason: LoginRejection,
    },
    /// No answer to the login within the timeout.
    #[error("no answer to the login from {0}")]
    LoginTimeout(std::net::SocketAddr),
    /// The server answered the login with something else.
    #[error("unexpected answer during login: {0}")]
    UnexpectedLoginAnswer(String),
    /// The server closed a TCP session's connection.
    #[error("server closed the connection")]
    Closed,
    /// The server sent bytes that are not SoupBinTCP.
    #[error("bad SoupBinTCP stream: {0}")]
    BadStream(String),
    /// A session index beyond the client's sessions.
    #[error("no session {0}")]
    NoSession(usize),
    /// More messages than one packet carries.
    #[error("{0} messages do not fit one packet")]
    TooMany(usize),
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The UDP port failed.
    #[error(transparent)]
    Net(#[from] peregrine_netio::NetError),
}
