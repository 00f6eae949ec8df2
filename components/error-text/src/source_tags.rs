//! The official client's source tags: it tags some of its errors with the source file and
//! line they came from (`[/home/u/.cargo/registry/src/.../cluster.rs:209]: PD cluster
//! failed to respond`), which says nothing to a user and shows a build machine's paths.

/// `text` without the client's `[<path>.rs:<line>]: ` source tags; anything else in square
/// brackets (a key, a list) stays.
pub fn without_source_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let tail = &rest[open..];
        match source_tag_len(tail) {
            Some(len) => rest = &tail[len..],
            None => {
                out.push('[');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The length of the source tag `[<path>.rs:<digits>]: ` (or without the `: `) that `text`
/// starts with, if it starts with one.
fn source_tag_len(text: &str) -> Option<usize> {
    let close = text.find(']')?;
    let inner = &text[1..close];
    let (path, line) = inner.rsplit_once(':')?;
    let is_tag = path.ends_with(".rs")
        && !path.contains(char::is_whitespace)
        && !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit());
    if !is_tag {
        return None;
    }
    let after = &text[close + 1..];
    Some(close + 1 + if after.starts_with(": ") { 2 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_source_tags_are_dropped_and_nothing_else() {
        assert_eq!(
            without_source_tags(
                "cannot connect to PD at 127.0.0.1:2379: [/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tikv-client-0.4.0/src/pd/cluster.rs:209]: PD cluster failed to respond"
            ),
            "cannot connect to PD at 127.0.0.1:2379: PD cluster failed to respond"
        );
        assert_eq!(
            without_source_tags("a: [src/a.rs:1]: b: [src/b.rs:22] c"),
            "a: b:  c"
        );
        for kept in [
            "keys [a, b] missing",
            "range [r\\x00\\x00\\x00a, r\\x00\\x00\\x00m)",
            "[not a tag.rs:x]: y",
            "[a file.rs:3]: y",
            "unclosed [src/a.rs:1",
            "",
        ] {
            assert_eq!(without_source_tags(kept), kept);
        }
    }
}
