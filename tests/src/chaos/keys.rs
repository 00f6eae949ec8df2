//! The hot keys a workload hammers: a few slots under one prefix, optionally moving on to fresh
//! keys every so often so that no single key's history grows too long to check.

use std::time::Duration;

/// `slots` hot keys named `<prefix>/<slot>/<generation>`. The generation is 0 unless
/// `rotate_every` is set, in which case it is the number of whole `rotate_every` periods
/// since the clock's origin. Keys of one slot sort together and before the next slot's, so a
/// split at `<prefix>/<slot>` lands between hot keys.
#[derive(Clone, Debug)]
pub struct HotKeys {
    /// Common prefix of every key (distinct per run, so every register starts absent).
    pub prefix: String,
    /// Number of hot keys in use at any moment.
    pub slots: usize,
    /// Move to fresh keys this often (`None`: never).
    pub rotate_every: Option<Duration>,
}

impl HotKeys {
    /// `slots` keys under `prefix`, never rotated.
    pub fn new(prefix: impl Into<String>, slots: usize) -> HotKeys {
        HotKeys {
            prefix: prefix.into(),
            slots: slots.max(1),
            rotate_every: None,
        }
    }

    /// The generation in use at `t_ns` nanoseconds after the clock's origin.
    pub fn generation(&self, t_ns: u64) -> u64 {
        match self.rotate_every {
            Some(period) if !period.is_zero() => t_ns / period.as_nanos().max(1) as u64,
            _ => 0,
        }
    }

    /// The key of `slot` at `t_ns`.
    pub fn key(&self, slot: usize, t_ns: u64) -> String {
        format!(
            "{}/{}/{:06}",
            self.prefix,
            slot % self.slots,
            self.generation(t_ns)
        )
    }

    /// Every key in use at `t_ns`.
    pub fn keys_at(&self, t_ns: u64) -> Vec<String> {
        (0..self.slots).map(|s| self.key(s, t_ns)).collect()
    }

    /// The first key of `slot`'s range (`<prefix>/<slot>`): a split there separates the slot
    /// from the one before it.
    pub fn slot_start(&self, slot: usize) -> String {
        format!("{}/{}", self.prefix, slot % self.slots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_rotate_and_sort_by_slot() {
        let mut keys = HotKeys::new("p", 3);
        assert_eq!(keys.key(1, 10_000_000_000), "p/1/000000");
        keys.rotate_every = Some(Duration::from_secs(2));
        assert_eq!(keys.key(1, 5_000_000_000), "p/1/000002");
        assert_eq!(keys.keys_at(0).len(), 3);
        assert!(keys.slot_start(1) < keys.key(1, 0));
        assert!(keys.key(1, u64::MAX / 2) < keys.slot_start(2));
    }
}
