//! A complete store binary with a split policy of its own: every *section* of the keyspace
//! (a user key `#name` without a `/`, followed by its entries `#name/...`) gets a region of its
//! own. It takes the same flags and config as `shoal-server`, so it can replace it in a fleet:
//!
//! ```sh
//! cargo build --example custom_split_policy
//! target/debug/examples/custom_split_policy --pd 127.0.0.1:2379 --addr 127.0.0.1:20160 \
//!     --data-dir data/store1
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use raftstore::SplitCheckInput;
use raftstore::SplitPolicy;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Length of the API V2 prefix of a raw key: `r` and the 3-byte keyspace id.
const KEYSPACE_PREFIX_LEN: usize = 4;

/// Splits a region where a section starts.
struct SectionPolicy;

impl SectionPolicy {
    /// The user key behind a stored key: stores keep the client's key (keyspace prefix
    /// included) memcomparable-encoded. `None` for keys of other formats.
    fn user_key(stored: &[u8]) -> Option<Vec<u8>> {
        let (raw, _) = keys::decode_bytes(stored).ok()?;
        (raw.first() == Some(&b'r') && raw.len() >= KEYSPACE_PREFIX_LEN)
            .then(|| raw[KEYSPACE_PREFIX_LEN..].to_vec())
    }

    fn is_section_head(user_key: &[u8]) -> bool {
        user_key.first() == Some(&b'#') && !user_key.contains(&b'/')
    }
}

impl SplitPolicy for SectionPolicy {
    fn name(&self) -> &str {
        "sections"
    }

    fn split_keys(&self, input: &SplitCheckInput<'_>) -> raftstore::Result<Vec<Vec<u8>>> {
        let start = input.region.start_key.as_slice();
        let mut keys = Vec::new();
        input.for_each_key(|stored, _size| {
            let head = Self::user_key(stored).is_some_and(|k| Self::is_section_head(&k));
            if head && stored > start {
                keys.push(stored.to_vec());
            }
            true
        })?;
        // Keys come column family by column family: sort them into one ascending list.
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

fn main() -> ExitCode {
    server::cli::run_store_process(|builder| builder.split_policy(Arc::new(SectionPolicy)))
}
