//! `gc`: moves the cluster's GC safe point forward, as a TiDB GC leader would, so the stores
//! drop the MVCC versions nobody can read any more.
//!
//! The safe point is a timestamp: every transaction that started before it has ended, and
//! each key keeps only its newest version at or below it (unless that is a delete) and the
//! versions above. The official client's `TransactionClient::gc` resolves every lock at or
//! below the safe point (committing its transaction if the primary committed, rolling it
//! back otherwise, even while its TTL runs) and then asks PD to move the safe point; each store's GC worker sees the new value at its
//! next poll (`[gc] poll-interval`) and removes the old versions of the regions it leads.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use tikv_client::{Timestamp, TimestampExt, TransactionClient};

use crate::pd_http::PdHttp;

/// The shortest `--life-time`: TiDB's floor for `tidb_gc_life_time`. A safe point closer to
/// now would remove versions that running transactions still read.
pub const MIN_LIFE_TIME: Duration = Duration::from_secs(10 * 60);

/// Bits of a TSO timestamp below its physical milliseconds (PD's and TiKV's layout).
const LOGICAL_BITS: u32 = 18;

/// Where the safe point should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// This long before PD's current timestamp.
    LifeTime(Duration),
    /// Exactly this timestamp, which must not be ahead of PD's current one.
    SafePoint(u64),
}

/// The safe point `target` asks for, given PD's current timestamp `now` (a TSO). Errors: a
/// life time shorter than [`MIN_LIFE_TIME`] or reaching before the epoch, a safe point in
/// the future.
pub fn safe_point(target: Target, now: u64) -> Result<u64> {
    match target {
        Target::LifeTime(life) => {
            if life < MIN_LIFE_TIME {
                bail!(
                    "--life-time {} is shorter than the minimum {}: transactions still running \
                     would lose the versions they read (give --safe-point to choose one exactly)",
                    humantime::format_duration(life),
                    humantime::format_duration(MIN_LIFE_TIME)
                );
            }
            let physical = now >> LOGICAL_BITS;
            let back = u64::try_from(life.as_millis()).unwrap_or(u64::MAX);
            let Some(at) = physical.checked_sub(back).filter(|at| *at > 0) else {
                bail!("--life-time reaches back before PD's clock began");
            };
            Ok(at << LOGICAL_BITS)
        }
        Target::SafePoint(ts) if ts > now => bail!(
            "safe point {ts} ({}) is ahead of PD's current timestamp {now} ({})",
            wall_clock(ts),
            wall_clock(now)
        ),
        Target::SafePoint(ts) => Ok(ts),
    }
}

/// The UTC wall-clock time of a TSO timestamp, to the second.
pub fn wall_clock(ts: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ts >> LOGICAL_BITS);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// PD's GC safe point, from its HTTP API.
fn pd_safe_point(pd: &PdHttp) -> Result<u64> {
    let cluster: serde_json::Value = pd.get("cluster")?;
    cluster["gc_safe_point"]
        .as_u64()
        .ok_or_else(|| anyhow!("PD's /cluster answer has no gc_safe_point: {cluster}"))
}

/// Moves the safe point to `target` and reports where it was and where it is.
pub async fn run(client: &TransactionClient, pd: &PdHttp, target: Target) -> Result<String> {
    let before = pd_safe_point(pd)?;
    let now = client
        .current_timestamp()
        .await
        .map_err(|e| anyhow!("getting a timestamp from PD: {e}"))?
        .version();
    let wanted = safe_point(target, now)?;
    if wanted <= before {
        return Ok(format!(
            "GC safe point stays at {before} ({}): already at or past {wanted} ({})\n",
            wall_clock(before),
            wall_clock(wanted)
        ));
    }
    client
        .gc(Timestamp::from_version(wanted))
        .await
        .map_err(|e| {
            anyhow!(
                "resolving the locks at or below {wanted} and moving the safe point: {e} \
                 (the safe point did not move; run the command again)"
            )
        })?;
    let after = pd_safe_point(pd)?;
    Ok(format!(
        "resolved every lock at or below {wanted}\nGC safe point: {before} ({}) -> {after} ({})\n\
         stores remove older versions at their next GC poll\n",
        wall_clock(before),
        wall_clock(after)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TSO at `ms` physical milliseconds with logical part 7.
    fn tso(ms: u64) -> u64 {
        (ms << LOGICAL_BITS) | 7
    }

    #[test]
    fn a_life_time_goes_back_from_pds_clock_to_a_whole_millisecond() {
        let now = tso(1_800_000_000_000);
        let sp = safe_point(Target::LifeTime(Duration::from_secs(600)), now).unwrap();
        assert_eq!(sp, (1_800_000_000_000 - 600_000) << LOGICAL_BITS);
        assert_eq!(wall_clock(sp), "2027-01-15T07:50:00Z");
    }

    #[test]
    fn a_short_life_time_or_a_future_safe_point_is_refused() {
        let now = tso(1_800_000_000_000);
        let short = safe_point(Target::LifeTime(Duration::from_secs(60)), now).unwrap_err();
        assert!(
            short.to_string().contains("shorter than the minimum 10m"),
            "{short}"
        );
        let far = safe_point(Target::LifeTime(Duration::from_secs(u64::MAX / 4)), now);
        assert!(far.is_err());
        let future = safe_point(Target::SafePoint(now + 1), now).unwrap_err();
        assert!(
            future
                .to_string()
                .contains("ahead of PD's current timestamp"),
            "{future}"
        );
        assert_eq!(safe_point(Target::SafePoint(now), now).unwrap(), now);
    }
}
