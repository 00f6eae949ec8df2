//! Checks every request passes before it touches the store that do not depend on the
//! cluster's API version (those live in `api`): the column family, and how keys are shown in
//! messages.

use super::errors::KvError;

/// The engine column family a request names ("" means the default one).
pub fn parse_cf(cf: &str) -> Result<&'static str, KvError> {
    match cf {
        "" | engine::CF_DEFAULT => Ok(engine::CF_DEFAULT),
        engine::CF_LOCK => Ok(engine::CF_LOCK),
        engine::CF_WRITE => Ok(engine::CF_WRITE),
        other => Err(KvError::InvalidArgument(format!(
            "unknown column family {other:?}; expected \"default\", \"lock\" or \"write\""
        ))),
    }
}

/// A key for messages: hex, shortened when long.
pub fn show_key(key: &[u8]) -> String {
    const SHOWN: usize = 32;
    let hex: String = key.iter().take(SHOWN).map(|b| format!("{b:02x}")).collect();
    if key.len() > SHOWN {
        format!("{hex}... ({} bytes)", key.len())
    } else {
        hex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_families() {
        assert_eq!(parse_cf("").unwrap(), "default");
        assert_eq!(parse_cf("default").unwrap(), "default");
        assert_eq!(parse_cf("lock").unwrap(), "lock");
        assert_eq!(parse_cf("write").unwrap(), "write");
        for bad in ["raft", "Default", "x", " default"] {
            assert!(
                matches!(parse_cf(bad), Err(KvError::InvalidArgument(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_keys_are_shortened_in_messages() {
        assert_eq!(show_key(b"ab"), "6162");
        assert!(show_key(&[0u8; 100]).ends_with("(100 bytes)"));
    }
}
