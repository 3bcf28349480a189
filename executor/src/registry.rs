//! Which runtime a task belongs to, carried in the task itself: its async-task metadata is a
//! [`TaskMeta`], its node's key, its runtime's [`RuntimeTag`] and its number, and a wake on a
//! thread where that runtime is not current finds the runtime's [`Shared`] here, by tag.
//!
//! Optimisation: the model gives every task a schedule closure holding an `Arc<Shared>`, so
//! that a wake from any thread knows where to go. That is 8 bytes in every task allocation,
//! and an atomic increment at the spawn and a decrement when the task is freed. Instead the
//! runtime's 3-byte tag rides in the padding of async-task's header (a 4-byte key left 3 of
//! its 8 bytes unused) and the schedule function captures nothing. Measured: the spawn_memory
//! benchmark's task allocation is 144 requested bytes instead of 152 (both are 160-byte
//! malloc chunks, so that benchmark does not move; a future 8 bytes smaller would go from a
//! 160-byte chunk to a 144-byte one), and without the two atomics cancel_tree takes 149-154
//! ns per leaf instead of 158-160 (binaries before and after, run alternately). On the loop
//! thread a wake compares the tag with the current runtime's, as it compared the `Arc`
//! pointers; only a wake from another thread pays for the lookup here (a lock and a map
//! lookup, next to the injector push and the unpark it does anyway). Costs a reader: this
//! module, and tags instead of pointers.
//!
//! # Ground rules
//!
//! - A tag names at most one live runtime: a runtime registers its `Shared` when it is made
//!   and the `Shared`'s `Drop` unregisters it; a new runtime never takes a tag in use.
//! - Tags are reused only after all 2^24 have been handed out, so a reused tag could reach
//!   the wrong runtime only through a wake that read its task's tag, then stalled while its
//!   runtime was dropped and 16,777,216 more runtimes were made, and then looked the tag up.
//!   A wake of a task whose runtime is gone finds nothing and drops its runnable, as a wake
//!   into a closed runtime does (`Shared::push_remote`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::queue::Shared;
use crate::tree::Key;

/// How many tags there are: 3 bytes' worth.
const TAGS: u32 = 1 << 24;

/// A live runtime's name among the live runtimes of the process (below 2^24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RuntimeTag(u32);

/// A task's async-task metadata: the key of its node in its runtime's tree, the tag of that
/// runtime, and the task's number within it (the 40 bits of [`TaskId::number`]). Packed to
/// 12 bytes: async-task's header is 48 bytes with it (its 8-byte state, 16-byte awaiter,
/// 8-byte vtable pointer and 1-byte panic flag, rounded up to 8), 40 with the key and tag
/// alone.
///
/// Optimisation: the number is here for the seeded strategies and the trace, which name
/// the job they pick by it. Read from the node, a pick under Random reads the node of a task
/// chosen at random before its poll begins, and waits for it; read from here, it reads the
/// header the poll reads next anyway. Measured with 10,000 tasks yielding 100 times, with
/// the pick's other trims of this round (no borrow of the tree, no read one pick ahead):
/// 591 -> 537 instructions per poll under Random, and about 2 ns per poll of the wall
/// time. The 8 bytes cost the spawn_memory benchmark nothing (its allocation goes from 144
/// to 152 requested bytes, in the same 160-byte malloc chunk); a task whose future ends
/// within 8 bytes of a 16-byte boundary takes a chunk 16 bytes larger.
///
/// [`TaskId::number`]: crate::TaskId::number
#[repr(C, packed)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskMeta {
    key: Key,
    runtime: [u8; 3],
    number: [u8; 5],
}

impl TaskMeta {
    pub(crate) fn new(key: Key, runtime: RuntimeTag, number: u64) -> Self {
        let [a, b, c, _] = runtime.0.to_le_bytes();
        let [n0, n1, n2, n3, n4, ..] = number.to_le_bytes();
        TaskMeta {
            key,
            runtime: [a, b, c],
            number: [n0, n1, n2, n3, n4],
        }
    }

    /// The task's number within its runtime.
    #[inline(always)]
    pub(crate) fn number(&self) -> u64 {
        let [n0, n1, n2, n3, n4] = self.number;
        u64::from_le_bytes([n0, n1, n2, n3, n4, 0, 0, 0])
    }

    /// The task's node.
    #[inline(always)]
    pub(crate) fn key(&self) -> Key {
        self.key
    }

    /// The task's runtime.
    #[inline(always)]
    pub(crate) fn runtime(&self) -> RuntimeTag {
        let [a, b, c] = self.runtime;
        RuntimeTag(u32::from_le_bytes([a, b, c, 0]))
    }
}

/// The live runtimes, by tag.
struct Registry {
    /// Where the search for a free tag starts.
    next: u32,
    live: BTreeMap<RuntimeTag, Weak<Shared>>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    live: BTreeMap::new(),
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // A panic cannot leave the map half-updated (each operation is one insert or remove).
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Gives `shared` a tag no live runtime has.
///
/// # Panics
///
/// With 2^24 runtimes alive at once.
pub(crate) fn register(shared: Weak<Shared>) -> RuntimeTag {
    let mut registry = registry();
    assert!(
        registry.live.len() < TAGS as usize,
        "more than {TAGS} treeloop runtimes alive at once: drop runtimes you no longer use"
    );
    let mut tag = RuntimeTag(registry.next);
    while registry.live.contains_key(&tag) {
        tag = RuntimeTag((tag.0 + 1) % TAGS);
    }
    registry.next = (tag.0 + 1) % TAGS;
    registry.live.insert(tag, shared);
    tag
}

/// Frees `tag`: its runtime's `Shared` is being dropped.
pub(crate) fn unregister(tag: RuntimeTag) {
    registry().live.remove(&tag);
}

/// The runtime with `tag`, if it is still there.
pub(crate) fn find(tag: RuntimeTag) -> Option<Arc<Shared>> {
    registry().live.get(&tag).and_then(Weak::upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_is_twelve_bytes_and_keeps_all_three_parts() {
        assert_eq!(size_of::<TaskMeta>(), 12);
        assert_eq!(align_of::<TaskMeta>(), 1);
        let number = (1 << 40) - 1;
        let meta = TaskMeta::new(0xdead_beef, RuntimeTag(TAGS - 1), number);
        assert_eq!(meta.key(), 0xdead_beef);
        assert_eq!(meta.runtime(), RuntimeTag(TAGS - 1));
        assert_eq!(meta.number(), number);
    }

    #[test]
    fn a_tag_in_use_is_never_handed_out_and_a_freed_one_finds_nothing() {
        let first = register(Weak::new());
        let second = register(Weak::new());
        assert_ne!(first, second);
        // A dead `Weak` (the runtime's `Shared` gone before it unregistered) finds nothing.
        assert!(find(first).is_none());
        unregister(first);
        unregister(second);
        assert!(find(first).is_none());
        assert!(!registry().live.contains_key(&first));
    }
}
