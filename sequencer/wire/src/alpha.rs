//! Alpha fields: text left-justified in a fixed number of bytes and padded
//! with spaces, as SoupBinTCP carries usernames (6 bytes), passwords and
//! session names (10), and MoldUDP64 its session name (10).
//!
//! One helper builds every such field so the server (configured names and
//! secrets), the gateways (a SoupBinTCP username standing in for a session
//! name) and the clients pad identically: a name written by one compares
//! equal, byte for byte, with the same name written by another.

/// Why a text cannot be a checked alpha field ([`checked_alpha_field`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlphaError {
    /// Empty, or more bytes than the field holds.
    #[error("must not be empty or longer than the field")]
    Length,
    /// A space, a control character or a non-ASCII byte.
    #[error("must be printable ASCII without spaces")]
    Characters,
}

/// `text` left-justified in `N` bytes, padded with spaces; bytes past `N`
/// are cut. Total: any input gives a field.
#[inline]
pub fn alpha_field<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut field = [b' '; N];
    for (d, &c) in field.iter_mut().zip(text) {
        *d = c;
    }
    field
}

/// [`alpha_field`] for configured names and secrets: `text` must be 1 to
/// `N` printable ASCII characters without spaces, so the padded field reads
/// back as exactly `text`.
pub fn checked_alpha_field<const N: usize>(text: &str) -> Result<[u8; N], AlphaError> {
    if text.is_empty() || text.len() > N {
        return Err(AlphaError::Length);
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(AlphaError::Characters);
    }
    Ok(alpha_field(text.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_with_spaces_and_cuts_at_the_width() {
        assert_eq!(&alpha_field::<10>(b"ok"), b"ok        ");
        assert_eq!(&alpha_field::<6>(b"toolongname"), b"toolon");
        assert_eq!(&alpha_field::<4>(b""), b"    ");
        // A 6-byte username as a 10-byte session name.
        assert_eq!(&alpha_field::<10>(b"alice "), b"alice     ");
    }

    #[test]
    fn checked_fields_refuse_what_would_not_read_back() {
        assert_eq!(checked_alpha_field::<10>("ok"), Ok(*b"ok        "));
        assert_eq!(checked_alpha_field::<10>("exactly10!"), Ok(*b"exactly10!"));
        assert_eq!(checked_alpha_field::<10>(""), Err(AlphaError::Length));
        assert_eq!(checked_alpha_field::<10>("elevenchars"), Err(AlphaError::Length));
        assert_eq!(
            checked_alpha_field::<10>("has space"),
            Err(AlphaError::Characters)
        );
        assert_eq!(checked_alpha_field::<10>("tab\t"), Err(AlphaError::Characters));
        assert_eq!(checked_alpha_field::<10>("é"), Err(AlphaError::Characters));
        assert_eq!(
            AlphaError::Length.to_string(),
            "must not be empty or longer than the field"
        );
        assert_eq!(
            AlphaError::Characters.to_string(),
            "must be printable ASCII without spaces"
        );
    }
}
