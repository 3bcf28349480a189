//! The facade names every type its items' signatures use: each one spelled here through a
//! `treeloop::` path was reachable only through the internal crates before it was exported,
//! so removing one of those exports breaks this build.

use treeloop::branch::{Racers, Spawner, TrySpawner};
use treeloop::task::{self, Region, RegionHandle, RegionKind, SpawnRefused};

// What the sealed `branch` traits' methods are handed: only treeloop makes them, users can
// only name them.
const _: Option<&Racers<()>> = None;
const _: Option<&Spawner> = None;
const _: Option<&TrySpawner<std::io::Error>> = None;

#[test]
fn builder_spawn_in_spawns_into_a_region_until_it_closes() {
    treeloop::block_on(async {
        let region = Region::open(RegionKind::Region);
        let handle: RegionHandle = region.handle();
        let child = task::Builder::new()
            .name("in the region")
            .spawn_in(&handle, async { 7 })
            .unwrap();
        assert_eq!(child.await.unwrap(), 7);
        drop(region);
        let refused: SpawnRefused = task::Builder::new()
            .spawn_in(&handle, async {})
            .unwrap_err();
        assert_eq!(refused, SpawnRefused::Closed);
    });
}

/// `RegionKind::Cancel` was renamed `RegionKind::Region` (the tree's word for the node kind);
/// the old name is a deprecated alias, so code written against it still compiles, in
/// expressions and in patterns, and opens the same kind of region.
#[test]
#[allow(deprecated)]
fn the_old_name_region_kind_cancel_still_means_a_cancel_region() {
    assert_eq!(RegionKind::Cancel, RegionKind::Region);
    let named = match RegionKind::Region {
        RegionKind::Cancel => "region",
        RegionKind::Shield => "shield",
    };
    assert_eq!(named, "region");
    let entry = treeloop::block_on(async {
        let region = Region::open(RegionKind::Cancel);
        let dump = treeloop::dump();
        let entry = dump.get(region.handle().id()).unwrap();
        (entry.kind, entry.parent == Some(dump.entries[0].id))
    });
    assert_eq!(entry, (treeloop::diag::EntryKind::Region, true));
}
