//! A map from peer id to a value for the handful of peers of one region.

/// Peer id -> `V`, kept as a vector: a region has a few peers, so a linear search is as fast
/// as hashing, and an empty map costs 24 bytes in every peer instead of a hash table's 48.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerMap<V> {
    entries: Vec<(u64, V)>,
}

impl<V> Default for PeerMap<V> {
    fn default() -> Self {
        PeerMap {
            entries: Vec::new(),
        }
    }
}

impl<V> PeerMap<V> {
    pub fn get(&self, peer_id: &u64) -> Option<&V> {
        self.entries
            .iter()
            .find(|(id, _)| id == peer_id)
            .map(|(_, v)| v)
    }

    /// Sets the value of `peer_id`, returning the one it replaces.
    pub fn insert(&mut self, peer_id: u64, value: V) -> Option<V> {
        match self.entries.iter_mut().find(|(id, _)| *id == peer_id) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((peer_id, value));
                None
            }
        }
    }

    /// The value of `peer_id`, set to `value` first if it has none.
    pub fn get_or_insert(&mut self, peer_id: u64, value: V) -> &mut V {
        let at = match self.entries.iter().position(|(id, _)| *id == peer_id) {
            Some(at) => at,
            None => {
                self.entries.push((peer_id, value));
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].1
    }

    /// Keeps the entries `keep` approves of.
    pub fn retain(&mut self, mut keep: impl FnMut(&u64, &mut V) -> bool) {
        self.entries.retain_mut(|(id, v)| keep(id, v));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.entries.iter().map(|(id, v)| (id, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_keyed_by_peer_id() {
        let mut map = PeerMap::default();
        assert_eq!(map.insert(3, "a"), None);
        assert_eq!(map.insert(5, "b"), None);
        assert_eq!(map.insert(3, "c"), Some("a"), "one entry per peer id");
        assert_eq!(map.iter().count(), 2);
        assert_eq!(map.get(&3), Some(&"c"));
        *map.get_or_insert(7, "d") = "e";
        assert_eq!(*map.get_or_insert(7, "f"), "e", "an existing value is kept");
        map.retain(|id, _| *id != 5);
        assert!(map.get(&5).is_none());
        let mut ids: Vec<u64> = map.iter().map(|(id, _)| *id).collect();
        ids.sort();
        assert_eq!(ids, vec![3, 7]);
        map.clear();
        assert!(map.is_empty());
    }
}
