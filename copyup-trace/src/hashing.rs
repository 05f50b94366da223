//! Which hash each table uses, and nothing else. Keys the traced system names (paths,
//! layer directories, mount points, container ids) are hashed with a seed drawn at run
//! time, so no one can pick names that collide and turn a table's lookups into scans;
//! numbers the kernel assigns (devices, cgroup ids, pids) keep Fx's fixed hash, which is
//! cheaper. Every table takes its map type from here.

use std::collections::HashMap;

/// Hashes names from the traced system: aHash with keys from the OS's random source.
pub type NameHasher = ahash::RandomState;

/// A map keyed by names from the traced system.
pub type NameMap<K, V> = HashMap<K, V, NameHasher>;

/// A map, and a set, of numbers the kernel assigns (or of the project's own small
/// enums).
pub use rustc_hash::{FxHashMap as IdMap, FxHashSet as IdSet};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_hasher_has_its_own_seed() {
        // Equal seeds would let names chosen against one run collide in every run.
        let path: &[u8] = b"/var/lib/containers/storage/overlay/l/etc/passwd";
        let hashes: std::collections::HashSet<u64> = (0..8)
            .map(|_| NameHasher::default().hash_one(path))
            .collect();
        assert_eq!(hashes.len(), 8);
    }
}
