//! Session names: `PG` and eight digits, so that one client can carry many
//! numbered sessions and tell them apart in what it receives.

use peregrine_wire::moldudp64::SessionName;

/// The name of session number `i`: `PG` and `i` as eight digits (numbers
/// beyond 99,999,999 wrap).
pub fn session_name(i: usize) -> SessionName {
    let mut n = [b'0'; 10];
    n[0] = b'P';
    n[1] = b'G';
    let mut x = i;
    for k in (2..10).rev() {
        n[k] = b'0' + (x % 10) as u8;
        x /= 10;
    }
    n
}

/// The number in a name made by [`session_name`]; None for other names.
pub fn session_index(n: &SessionName) -> Option<usize> {
    if &n[..2] != b"PG" {
        return None;
    }
    let mut v = 0usize;
    for &c in &n[2..] {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as usize;
    }
    Some(v)
}

/// The secret as the wire carries it: 10 bytes, space padded. Fails for an
/// empty secret, one longer than 10 bytes, or one with spaces or
/// non-printable bytes.
pub fn secret_field(s: &str) -> Result<[u8; 10], crate::ClientError> {
    peregrine_wire::alpha::checked_alpha_field(s).map_err(|e| {
        crate::ClientError::BadSecret(match e {
            peregrine_wire::alpha::AlphaError::Length => {
                "must not be empty or longer than the field (pass --secret)"
            }
            _ => "must be printable ASCII without spaces (pass --secret)",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_round_trip() {
        for i in [0, 1, 42, 99_999_999] {
            assert_eq!(session_index(&session_name(i)), Some(i));
        }
        assert_eq!(session_index(b"XX00000000"), None);
    }

    #[test]
    fn secrets_are_space_padded_and_checked() {
        assert_eq!(secret_field("test").unwrap(), *b"test      ");
        assert!(secret_field("").is_err());
        assert!(secret_field("a b").is_err());
        assert!(secret_field("elevenbytes").is_err());
    }
}
