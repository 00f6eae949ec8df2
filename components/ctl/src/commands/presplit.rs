//! `presplit`: split the default keyspace at many keys at once, before loading data, through
//! PD's split operators. Each region is split at up to `--batch` of the keys it holds in one
//! raft `BatchSplit`; the next batch starts once PD has heard of the split.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use crate::cli::PresplitArgs;
use crate::keyfmt::{pd_key_for_user_key, unescape};
use crate::model::RegionInfo;
use crate::pd_http::PdHttp;

/// Most keys one split operator may carry (PD hands out ids for at most 1,024 new regions per
/// `AskBatchSplit`).
pub const MAX_BATCH: usize = 1024;

/// How often PD is asked whether a split has landed.
const POLL: Duration = Duration::from_millis(50);

/// The user keys to split at, from a file (one escaped key per line, blank lines skipped) or
/// numbered: `prefix` followed by `digits`-digit zero-padded numbers evenly spread over
/// `[0, max)`, one key fewer than `regions`.
pub fn split_keys(args: &PresplitArgs) -> Result<Vec<Vec<u8>>> {
    if let Some(path) = &args.keys_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading split keys from {}", path.display()))?;
        return text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty())
            .map(unescape)
            .collect();
    }
    let (Some(prefix), Some(regions)) = (&args.prefix, args.regions) else {
        bail!("give --keys-file, or --prefix with --regions");
    };
    if regions < 2 {
        bail!("--regions must be at least 2");
    }
    if !(1..=20).contains(&args.digits) {
        bail!("--digits must be 1 to 20");
    }
    let space = 10u128.pow(args.digits);
    let max = args.max.map_or(space, u128::from);
    if max > space {
        bail!(
            "--max {max} does not fit in --digits {}: the numbers run below {space}",
            args.digits
        );
    }
    if max < u128::from(regions) {
        bail!("{regions} regions do not fit in {max} numbers");
    }
    let prefix = unescape(prefix)?;
    let width = args.digits as usize;
    Ok((1..u128::from(regions))
        .map(|i| {
            let n = i * max / u128::from(regions);
            let mut key = prefix.clone();
            key.extend_from_slice(format!("{n:0width$}").as_bytes());
            key
        })
        .collect())
}

/// Splits at every key and returns a summary line.
pub fn run(pd: &PdHttp, args: &PresplitArgs) -> Result<String> {
    if args.batch == 0 || args.batch > MAX_BATCH {
        bail!("--batch must be 1 to {MAX_BATCH}");
    }
    let user_keys = split_keys(args)?;
    // Encoded keys sort like PD's key space; duplicates split nothing.
    let keys: Vec<Vec<u8>> = user_keys
        .iter()
        .map(|k| pd_key_for_user_key(k))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let started = Instant::now();
    let wait = Duration::from_secs(args.wait_secs);
    let (mut next, mut split, mut operators) = (0, 0usize, 0usize);
    while next < keys.len() {
        let region = region_at_within(pd, &keys[next], wait)?;
        let start = decode_hex(&region.start_key)?;
        let end = decode_hex(&region.end_key)?;
        if start == keys[next] {
            // Already a region boundary.
            next += 1;
            continue;
        }
        let batch: Vec<&Vec<u8>> = keys[next..]
            .iter()
            .take_while(|k| end.is_empty() || k.as_slice() < end.as_slice())
            .take(args.batch)
            .collect();
        let body = json!({
            "name": "split-region",
            "region_id": region.id,
            "keys": batch.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        post_when_free(pd, &body, wait)
            .with_context(|| format!("asking PD to split region {}", region.id))?;
        let last = batch[batch.len() - 1];
        wait_for_boundary(pd, last, wait).with_context(|| {
            format!(
                "region {} split at {} keys: PD did not see the split within {}s",
                region.id,
                batch.len(),
                args.wait_secs
            )
        })?;
        next += batch.len();
        split += batch.len();
        operators += 1;
        if args.progress {
            eprintln!(
                "{split}/{} keys split ({operators} operators, {:.1}s)",
                keys.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "split at {split} new keys ({} already boundaries) with {operators} operators in \
         {secs:.1}s ({:.0} regions/s)\n",
        keys.len() - split,
        split as f64 / secs.max(1e-9)
    ))
}

/// Creates the operator `body` describes. The region's previous split can still be running
/// in PD a moment after its result is visible (PD ends it on the region's next report), so
/// "already has an operator" is retried until `wait` has passed.
fn post_when_free(pd: &PdHttp, body: &serde_json::Value, wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        match pd.post("operators", body) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.to_string().contains("already has an operator")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(e),
        }
    }
}

fn region_at(pd: &PdHttp, key: &[u8]) -> Result<RegionInfo> {
    let region: RegionInfo = pd
        .get(&format!("region/key/{}", hex::encode(key)))
        .with_context(|| format!("looking up the region of {}", hex::encode(key)))?;
    if region.id == 0 {
        bail!("PD returned no region for {}", hex::encode(key));
    }
    Ok(region)
}

/// The region holding `key`, asked again until `wait` has passed while PD has none: right
/// after a split PD can hold the new regions before the parent's shrunk range, a moment with
/// a gap in its map.
fn region_at_within(pd: &PdHttp, key: &[u8], wait: Duration) -> Result<RegionInfo> {
    let deadline = Instant::now() + wait;
    loop {
        match region_at(pd, key) {
            Ok(region) => return Ok(region),
            Err(_) if Instant::now() < deadline => std::thread::sleep(POLL),
            Err(e) => return Err(e),
        }
    }
}

/// Waits until PD knows a region starting exactly at `key`.
fn wait_for_boundary(pd: &PdHttp, key: &[u8], wait: Duration) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        let region = region_at_within(pd, key, deadline.saturating_duration_since(Instant::now()))?;
        if decode_hex(&region.start_key)? == key {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "region {} still spans {} (epoch version {})",
                region.id,
                hex::encode(key),
                region.epoch.version
            );
        }
        std::thread::sleep(POLL);
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>> {
    hex::decode(text).with_context(|| format!("PD sent a key that is not hex: {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(prefix: &str, regions: u64, digits: u32, max: Option<u64>) -> PresplitArgs {
        PresplitArgs {
            keys_file: None,
            prefix: Some(prefix.into()),
            regions: Some(regions),
            digits,
            max,
            batch: 1000,
            wait_secs: 60,
            progress: false,
        }
    }

    #[test]
    fn numbered_keys_divide_the_space_evenly() {
        let keys = split_keys(&numbered("user", 4, 3, None)).unwrap();
        assert_eq!(
            keys,
            vec![
                b"user250".to_vec(),
                b"user500".to_vec(),
                b"user750".to_vec()
            ]
        );
        let keys = split_keys(&numbered("k", 3, 2, Some(30))).unwrap();
        assert_eq!(keys, vec![b"k10".to_vec(), b"k20".to_vec()]);
        // 20 digits hold all of u64 (how YCSB keys are numbered).
        let keys = split_keys(&numbered("user", 2, 20, Some(u64::MAX))).unwrap();
        assert_eq!(keys, vec![format!("user{:020}", u64::MAX / 2).into_bytes()]);
    }

    #[test]
    fn impossible_numbered_splits_are_refused() {
        assert!(split_keys(&numbered("k", 1, 3, None)).is_err());
        assert!(split_keys(&numbered("k", 11, 1, None)).is_err());
        assert!(split_keys(&numbered("k", 2, 21, None)).is_err());
        // --max beyond what --digits can write (it used to be cut down silently).
        let err = split_keys(&numbered("v", 4, 2, Some(1000)))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--max 1000") && err.contains("--digits 2"),
            "{err}"
        );
        assert!(split_keys(&numbered("v", 4, 2, Some(100))).is_ok());
        let mut no_prefix = numbered("k", 3, 3, None);
        no_prefix.prefix = None;
        assert!(split_keys(&no_prefix).is_err());
    }

    #[test]
    fn keys_come_from_a_file_with_escapes() {
        let dir = std::env::temp_dir().join(format!("presplit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.txt");
        std::fs::write(&path, "b\n\na\\x00\n").unwrap();
        let mut args = numbered("k", 3, 3, None);
        args.keys_file = Some(path);
        assert_eq!(
            split_keys(&args).unwrap(),
            vec![b"b".to_vec(), b"a\x00".to_vec()]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
