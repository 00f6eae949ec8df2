//! An error and its causes on one line, each said once.
//!
//! Most of Shoal's error types put their cause in their own message (`cannot create {path}:
//! {source}`) and also return it from `source()`, so that a log line of the error alone is
//! complete. Printing the whole chain (`{:#}` of an `anyhow::Error`) then says each such cause
//! twice: `cannot create /d: File exists (os error 17): File exists (os error 17)`.

use std::error::Error;

/// `error`'s message followed by each cause in its `source()` chain, joined by `": "`, leaving
/// out a cause whose message already ends the message of the error it caused (it was
/// printed there). For `anyhow::Error`, pass `e.as_ref()`.
pub fn chain_text(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut enclosing = text.clone();
    let mut cause = error.source();
    while let Some(c) = cause {
        let own = c.to_string();
        if !enclosing.ends_with(&own) {
            text.push_str(": ");
            text.push_str(&own);
        }
        enclosing = own;
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cause inside its own message, as most of Shoal's error types do.
    #[derive(Debug, thiserror::Error)]
    #[error("cannot create {path}: {source}")]
    struct CreateDir {
        path: String,
        source: std::io::Error,
    }

    /// A cause left to the chain, as anyhow's contexts do.
    #[derive(Debug, thiserror::Error)]
    #[error("storage")]
    struct Storage(#[source] CreateDir);

    fn exists() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "File exists")
    }

    #[test]
    fn a_cause_already_in_its_wrappers_message_is_said_once() {
        let e = anyhow::Error::new(CreateDir {
            path: "/d".into(),
            source: exists(),
        })
        .context("store failed to start");
        assert_eq!(
            format!("{e:#}"),
            "store failed to start: cannot create /d: File exists: File exists"
        );
        assert_eq!(
            chain_text(e.as_ref()),
            "store failed to start: cannot create /d: File exists"
        );
    }

    #[test]
    fn causes_left_to_the_chain_are_all_printed() {
        let e = Storage(CreateDir {
            path: "/d".into(),
            source: exists(),
        });
        assert_eq!(chain_text(&e), "storage: cannot create /d: File exists");
        let plain = anyhow::anyhow!("no cause");
        assert_eq!(chain_text(plain.as_ref()), "no cause");
    }
}
