//! The task tree: who is whose parent, who is cancelled, who is still waiting for children.
//!
//! Every task, every open shield and the `block_on` root is a [`Node`] in one `Slab`. Nodes
//! link to their parent, first and last child and siblings (an intrusive doubly linked list),
//! so inserting, unlinking and walking a subtree need neither allocation nor recursion.
//!
//! # Ground rules
//!
//! - Only the loop thread touches the tree, and only in short borrows that never span user
//!   code: operations that must wake somebody push the wakers into a caller-supplied `Vec`
//!   and the caller wakes them after releasing the borrow (a waker may re-enter the runtime).
//! - **Cancellation invariant.** If a node is marked cancelled, so is every descendant that
//!   can be reached without passing through a shield. New nodes inherit their parent's mark
//!   (shields excepted), and [`Tree::cancel`] restores the invariant when it marks a node.
//!   Hence "is this await point cancelled?" is one lookup of the current node's mark, and
//!   cancelling an already cancelled node stops at once (R5: calling it twice is harmless).
//! - **Completion invariant.** A node leaves the slab only when it has no children
//!   ([`Tree::finish`]). A task whose future returned, or a shield its owner has left, stays
//!   in the [`Phase::Completing`] phase until its last child is gone (R2).
//!
//! A slab, not a `HashMap`: keys are dense and reused, lookups are an index. Because keys
//! are reused, handles that outlive a node carry a [`NodeRef`] (key plus a never reused id)
//! and check it with [`Tree::resolve`].
//!
//! Read next: [`crate::core`], the only code that changes the tree (step 2 of the reading
//! order in ARCHITECTURE.md).

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

use slab::Slab;

use crate::cancel::CancelReason;

/// Index of a node in the slab. `u32` keeps a node small; a runtime is limited to
/// 4,294,967,294 live nodes at once.
pub(crate) type Key = u32;

/// "No node": the absent parent, child or sibling.
const NIL: Key = Key::MAX;

/// A task's public identity: unique within its runtime, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The number within its runtime: the order in which its tasks and regions were
    /// created (the high bits of the id tell runtimes apart).
    pub fn number(&self) -> u64 {
        self.0 & ((1 << 40) - 1)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.number())
    }
}

/// A reference to a node that survives the node: a stale one resolves to nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeRef {
    /// Where the node was.
    pub(crate) key: Key,
    /// Who was there.
    pub(crate) id: TaskId,
}

/// What a node stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// The future passed to `block_on`.
    Root,
    /// A spawned task.
    Task,
    /// A cancel region inside some task (a scope, a timeout): cancellable from above and
    /// directly.
    Region,
    /// A `shield(..)` region inside some task: cancellation does not cross it downwards.
    Shield,
}

/// Where a node is in its life. "Finished" is not a phase: a finished node is not in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Task or root: its future has not returned. Region: its owner is still inside.
    Active,
    /// Task: `abort()` was called; the future is dropped at its next poll.
    Aborting,
    /// Task: its future returned or was dropped, and it waits for its children (Kotlin's
    /// "completing"). Region: its owner left while children spawned inside still run.
    Completing,
}

/// Whether somebody can still take a task's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JoinInterest {
    /// Its `JoinHandle` is alive: the outcome (a panic included) goes there.
    Handle,
    /// The handle was dropped: a panic has nobody to go to and is reported (R17).
    Dropped,
}

/// One task, shield or root.
pub(crate) struct Node {
    /// Never reused, unlike the slab key.
    pub(crate) id: TaskId,
    /// Task, shield or root.
    pub(crate) kind: NodeKind,
    /// Active, aborting or completing.
    pub(crate) phase: Phase,
    /// Whether a `JoinHandle` still wants the outcome (tasks only).
    pub(crate) join: JoinInterest,
    /// The cancellation mark and its origin; `None` while not cancelled.
    pub(crate) cancel: Option<CancelReason>,
    /// Who to wake when this node is cancelled or its last child finishes: a task's own
    /// waker; for a shield, the waker of the task polling it (`None` once it is left).
    pub(crate) waker: Option<Waker>,
    /// Where it was spawned or opened.
    pub(crate) location: &'static Location<'static>,
    /// The node it was spawned or opened in; `NIL` for the root.
    parent: Key,
    /// Oldest live child, or `NIL`.
    first_child: Key,
    /// Newest live child, or `NIL` (children are appended, so walks see spawn order).
    last_child: Key,
    /// Older sibling, or `NIL`.
    prev: Key,
    /// Younger sibling, or `NIL`.
    next: Key,
}

/// What a node's removal leads to, one level up ([`Tree::finish`]).
enum AfterRemoval<'a> {
    /// The parent is a region or shield its owner has left, and this was its last child:
    /// it goes too; carry on from it.
    Continue(Key),
    /// The parent was waiting for its last child (a completing task, a scope waiting for
    /// its members): wake whoever polls it.
    WakeOwner(&'a Waker),
    /// Nothing more: the parent has other children, is not waiting, or there is none.
    Done,
}

/// The slab of nodes plus the id counter.
pub(crate) struct Tree {
    /// Every live node; finished ones are removed.
    nodes: Slab<Node>,
    /// The id the next node gets.
    next_id: u64,
    /// The names given with `task::Builder::name`. Beside the nodes rather than in them, so
    /// a node stays 56 bytes and an unnamed task pays nothing.
    names: HashMap<Key, Box<str>>,
    /// How many live nodes are marked cancelled. Optimisation (see [`Tree::any_marked`]):
    /// kept exact by the one place that marks a node ([`Tree::mark`]), the one that inserts
    /// one (which may inherit a mark) and the one that removes one ([`Tree::finish`]).
    marked: usize,
}

/// Where the next runtime's block of ids starts. Each runtime takes 2^40 ids, so a
/// `NodeRef` from one runtime can never resolve in another on the same thread.
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(0);

impl Tree {
    pub(crate) fn new() -> Self {
        Tree {
            nodes: Slab::new(),
            next_id: NEXT_ID_BLOCK.fetch_add(1 << 40, Ordering::Relaxed),
            names: HashMap::new(),
            marked: 0,
        }
    }

    /// Inserts a node as the youngest child of `parent` (`None` for a root). It inherits
    /// the parent's cancellation mark unless it is a shield (the cancellation invariant).
    #[inline]
    pub(crate) fn insert(
        &mut self,
        parent: Option<Key>,
        kind: NodeKind,
        location: &'static Location<'static>,
    ) -> NodeRef {
        let id = self.reserve_id();
        self.insert_as(parent, kind, location, id)
    }

    /// Takes the next id without inserting a node: a lazy shield takes its number when it
    /// is first polled, where an eager one opens its node, so the numbers of everything
    /// created after it (which traces name tasks by) do not depend on whether diagnostics
    /// made it a node (see `crate::shield`).
    #[inline]
    pub(crate) fn reserve_id(&mut self) -> TaskId {
        let id = TaskId(self.next_id);
        self.next_id += 1;
        id
    }

    /// [`Tree::insert`] with an id taken earlier by [`Tree::reserve_id`].
    pub(crate) fn insert_as(
        &mut self,
        parent: Option<Key>,
        kind: NodeKind,
        location: &'static Location<'static>,
        id: TaskId,
    ) -> NodeRef {
        let parent = parent.unwrap_or(NIL);
        let cancel = match kind {
            NodeKind::Shield => None,
            _ if parent == NIL => None,
            _ => self.nodes[parent as usize].cancel,
        };
        self.marked += usize::from(cancel.is_some());
        let prev = if parent == NIL {
            NIL
        } else {
            self.nodes[parent as usize].last_child
        };
        let key = self.nodes.insert(Node {
            id,
            kind,
            phase: Phase::Active,
            join: JoinInterest::Handle,
            cancel,
            waker: None,
            location,
            parent,
            first_child: NIL,
            last_child: NIL,
            prev,
            next: NIL,
        });
        let key = Key::try_from(key).expect("more than u32::MAX - 1 live tasks in one runtime");
        if parent != NIL {
            if prev == NIL {
                self.nodes[parent as usize].first_child = key;
            } else {
                self.nodes[prev as usize].next = key;
            }
            self.nodes[parent as usize].last_child = key;
        }
        NodeRef { key, id }
    }

    /// Names the node at `key`.
    pub(crate) fn set_name(&mut self, key: Key, name: Box<str>) {
        self.names.insert(key, name);
    }

    /// The name of the node at `key`, if it was given one.
    pub(crate) fn name(&self, key: Key) -> Option<&str> {
        if self.names.is_empty() {
            return None;
        }
        self.names.get(&key).map(|name| &**name)
    }

    pub(crate) fn node(&self, key: Key) -> &Node {
        &self.nodes[key as usize]
    }

    /// The node at `key`, if any (`key` may be the "no node" sentinel).
    pub(crate) fn get(&self, key: Key) -> Option<&Node> {
        self.nodes.get(key as usize)
    }

    pub(crate) fn node_mut(&mut self, key: Key) -> &mut Node {
        &mut self.nodes[key as usize]
    }

    /// The node `r` points at, if it is still the same node.
    pub(crate) fn resolve(&self, r: NodeRef) -> Option<Key> {
        let node = self.nodes.get(r.key as usize)?;
        (node.id == r.id).then_some(r.key)
    }

    /// A reference to `key` that can outlive it.
    pub(crate) fn node_ref(&self, key: Key) -> NodeRef {
        NodeRef {
            key,
            id: self.nodes[key as usize].id,
        }
    }

    pub(crate) fn parent(&self, key: Key) -> Option<Key> {
        let parent = self.nodes[key as usize].parent;
        (parent != NIL).then_some(parent)
    }

    pub(crate) fn has_children(&self, key: Key) -> bool {
        self.nodes[key as usize].first_child != NIL
    }

    /// Whether any live node is marked cancelled.
    ///
    /// Optimisation: the marked count. The model asks the current node for its mark at
    /// every await point; while nothing in the runtime is cancelled (nearly always) the
    /// count answers without reading the node, which a poll otherwise need not touch. In a
    /// random schedule over more tasks than the cache holds, that read is a cache miss at
    /// every poll. Costs a reader: a counter kept exact by insert, mark and finish.
    #[inline]
    pub(crate) fn any_marked(&self) -> bool {
        self.marked > 0
    }

    /// Number of live nodes (tasks, regions, shields and roots).
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Number of live tasks: nodes of kind [`NodeKind::Task`]. A pass over the slab (not
    /// kept as a count, which every insert and removal would pay for).
    pub(crate) fn tasks(&self) -> usize {
        self.nodes
            .iter()
            .filter(|(_, node)| node.kind == NodeKind::Task)
            .count()
    }

    /// Marks `start` and its subtree cancelled, stopping at shields and at nodes already
    /// marked (whose subtrees are marked by the invariant), and hands every newly marked
    /// node to `on_mark` (which wakes it). Returns how many nodes it marked.
    ///
    /// The walk is a pre-order traversal threaded through the parent links: down to the
    /// first child, else across to the next sibling, else up until a sibling exists. No
    /// stack, no recursion, O(subtree) (R5, R21).
    pub(crate) fn cancel(
        &mut self,
        start: Key,
        reason: CancelReason,
        mut on_mark: impl FnMut(Key, &Node),
    ) -> usize {
        if self.nodes[start as usize].cancel.is_some() {
            return 0;
        }
        self.mark(start, reason, &mut on_mark);
        let mut marked = 1;
        let mut cur = start;
        let mut descend = true;
        while let Some(next) = self.next_preorder(cur, start, descend) {
            cur = next;
            let node = &self.nodes[cur as usize];
            descend = node.kind != NodeKind::Shield && node.cancel.is_none();
            if descend {
                self.mark(cur, reason, &mut on_mark);
                marked += 1;
            }
        }
        marked
    }

    #[inline]
    fn mark(&mut self, key: Key, reason: CancelReason, on_mark: &mut impl FnMut(Key, &Node)) {
        let node = &mut self.nodes[key as usize];
        debug_assert!(node.cancel.is_none(), "a node marked twice");
        node.cancel = Some(reason);
        self.marked += 1;
        on_mark(key, node);
    }

    /// Moves every active task of `start`'s subtree (`start` included, shields crossed) to
    /// `Aborting` and returns how many it moved, with their wakers: a crash, where no task of
    /// the subtree runs again (`JoinHandle::abort_subtree`). Regions need nothing: their
    /// owners are tasks.
    pub(crate) fn abort_subtree(&mut self, start: Key) -> (usize, Vec<Waker>) {
        let mut moved = 0;
        let mut wakers = Vec::new();
        let mut cur = start;
        loop {
            let node = &mut self.nodes[cur as usize];
            if node.kind == NodeKind::Task && node.phase == Phase::Active {
                node.phase = Phase::Aborting;
                moved += 1;
                wakers.extend(node.waker.clone());
            }
            match self.next_preorder(cur, start, true) {
                Some(next) => cur = next,
                None => return (moved, wakers),
            }
        }
    }

    /// The node after `cur` in a pre-order walk of the subtree rooted at `top`, skipping
    /// `cur`'s children unless `descend`.
    fn next_preorder(&self, cur: Key, top: Key, descend: bool) -> Option<Key> {
        let first = self.nodes[cur as usize].first_child;
        if descend && first != NIL {
            return Some(first);
        }
        let mut at = cur;
        while at != top {
            let node = &self.nodes[at as usize];
            if node.next != NIL {
                return Some(node.next);
            }
            at = node.parent;
        }
        None
    }

    /// Removes a childless node and lets its ancestors react: a shield that was left and is
    /// now empty goes too (the loop continues upward), a completing task whose last child
    /// this was is woken so it can finish. Iterative, however long the chain (R21).
    pub(crate) fn finish(&mut self, key: Key, wake: &mut Vec<Waker>) {
        let mut key = key;
        loop {
            debug_assert!(
                !self.has_children(key),
                "a node finished before its children"
            );
            let node = self.nodes.remove(key as usize);
            self.marked -= usize::from(node.cancel.is_some());
            if !self.names.is_empty() {
                self.names.remove(&key);
            }
            let parent = node.parent;
            if node.prev != NIL {
                self.nodes[node.prev as usize].next = node.next;
            } else if parent != NIL {
                self.nodes[parent as usize].first_child = node.next;
            }
            if node.next != NIL {
                self.nodes[node.next as usize].prev = node.prev;
            } else if parent != NIL {
                self.nodes[parent as usize].last_child = node.prev;
            }
            match self.after_removal(parent) {
                AfterRemoval::Continue(up) => key = up,
                AfterRemoval::WakeOwner(waker) => {
                    wake.push(waker.clone());
                    return;
                }
                AfterRemoval::Done => return,
            }
        }
    }

    /// What the removal of a child of `parent` (`NIL`: of nobody) leads to: the step of
    /// [`Tree::finish`]'s walk up.
    fn after_removal(&self, parent: Key) -> AfterRemoval<'_> {
        if parent == NIL || self.has_children(parent) {
            return AfterRemoval::Done;
        }
        let node = &self.nodes[parent as usize];
        match (node.kind, node.phase) {
            // A region its owner left goes with its last child; look further up.
            (NodeKind::Region | NodeKind::Shield, Phase::Completing) => {
                AfterRemoval::Continue(parent)
            }
            // A completing task can now finish; an open region's owner (a scope waiting for
            // its members) can now return.
            (NodeKind::Task, Phase::Completing)
            | (NodeKind::Region | NodeKind::Shield, Phase::Active) => match &node.waker {
                Some(waker) => AfterRemoval::WakeOwner(waker),
                None => AfterRemoval::Done,
            },
            _ => AfterRemoval::Done,
        }
    }

    /// The nodes without a parent: the root of each `block_on` in progress.
    pub(crate) fn roots(&self) -> Vec<Key> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.parent == NIL)
            .map(|(key, _)| key as Key)
            .collect()
    }

    /// Visits `top` and its subtree in pre-order (parents first, siblings oldest first),
    /// with each node's depth below `top`. Threaded through the links like [`Tree::cancel`]:
    /// no stack, no recursion, any depth (R21).
    pub(crate) fn walk(&self, top: Key, mut visit: impl FnMut(Key, &Node, usize)) {
        let mut cur = top;
        let mut depth = 0;
        loop {
            let node = &self.nodes[cur as usize];
            visit(cur, node, depth);
            if node.first_child != NIL {
                cur = node.first_child;
                depth += 1;
                continue;
            }
            // Up until a younger sibling exists.
            let mut at = cur;
            loop {
                if at == top {
                    return;
                }
                let node = &self.nodes[at as usize];
                if node.next != NIL {
                    cur = node.next;
                    break;
                }
                at = node.parent;
                depth -= 1;
            }
        }
    }

    /// The task (or root) whose body opened the region `key`: the nearest ancestor that
    /// has a future.
    pub(crate) fn owner(&self, key: Key) -> Option<Key> {
        let mut at = self.parent(key)?;
        loop {
            match self.nodes[at as usize].kind {
                NodeKind::Task | NodeKind::Root => return Some(at),
                NodeKind::Region | NodeKind::Shield => at = self.parent(at)?,
            }
        }
    }

    /// Every live task's waker, for teardown.
    pub(crate) fn task_wakers(&self) -> Vec<Waker> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.kind == NodeKind::Task)
            .filter_map(|(_, node)| node.waker.clone())
            .collect()
    }

    /// Forgets every node (teardown, after every task future was dropped).
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        self.names.clear();
        self.marked = 0;
    }
}

#[cfg(test)]
mod tests {
    /// The byte table in benches/README.md ("Where an idle task's bytes go") counts this:
    /// a change of the node's size should change the table too.
    #[test]
    fn a_node_is_56_bytes() {
        assert_eq!(size_of::<Node>(), 56);
    }

    use super::*;

    fn here() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn cancel_marks_subtree_and_stops_at_shields() {
        let mut tree = Tree::new();
        let root = tree.insert(None, NodeKind::Root, here()).key;
        let a = tree.insert(Some(root), NodeKind::Task, here()).key;
        let shield = tree.insert(Some(a), NodeKind::Shield, here()).key;
        let under_shield = tree.insert(Some(shield), NodeKind::Task, here()).key;
        let b = tree.insert(Some(a), NodeKind::Task, here()).key;
        let sibling = tree.insert(Some(root), NodeKind::Task, here()).key;
        let wake = |_: Key, _: &Node| {};
        assert_eq!(tree.cancel(a, CancelReason::Explicit, wake), 2);
        assert!(tree.node(a).cancel.is_some());
        assert!(tree.node(b).cancel.is_some());
        assert!(tree.node(shield).cancel.is_none());
        assert!(tree.node(under_shield).cancel.is_none());
        assert!(tree.node(sibling).cancel.is_none());
        assert!(tree.node(root).cancel.is_none());
        assert_eq!(tree.cancel(a, CancelReason::Deadline, wake), 0);
        assert_eq!(tree.node(b).cancel, Some(CancelReason::Explicit));
        // New children inherit the mark, except shields.
        let late = tree.insert(Some(a), NodeKind::Task, here()).key;
        assert_eq!(tree.node(late).cancel, Some(CancelReason::Explicit));
    }

    /// The marked count says "nothing is cancelled" only when no live node is marked: it
    /// follows marks, inherited marks and removals, and teardown resets it.
    #[test]
    fn the_marked_count_follows_marks_inheritance_and_removal() {
        let mut tree = Tree::new();
        let mut wake = Vec::new();
        let root = tree.insert(None, NodeKind::Root, here()).key;
        let a = tree.insert(Some(root), NodeKind::Task, here()).key;
        let b = tree.insert(Some(a), NodeKind::Task, here()).key;
        let shield = tree.insert(Some(a), NodeKind::Shield, here()).key;
        assert!(!tree.any_marked());
        assert_eq!(tree.cancel(a, CancelReason::Explicit, |_, _| {}), 2);
        assert_eq!(tree.marked, 2);
        let late = tree.insert(Some(b), NodeKind::Task, here()).key;
        let late_shield = tree.insert(Some(b), NodeKind::Shield, here()).key;
        assert_eq!(
            tree.marked, 3,
            "a child inherits the mark, a shield does not"
        );
        for key in [late, late_shield, b, shield] {
            tree.finish(key, &mut wake);
        }
        assert_eq!(tree.marked, 1, "only `a` is still marked");
        tree.node_mut(a).phase = Phase::Completing;
        tree.finish(a, &mut wake);
        assert!(!tree.any_marked());
        tree.cancel(root, CancelReason::Shutdown, |_, _| {});
        assert!(tree.any_marked());
        tree.clear();
        assert!(!tree.any_marked());
    }

    #[test]
    fn finish_removes_left_shields_and_keeps_links_consistent() {
        let mut tree = Tree::new();
        let root = tree.insert(None, NodeKind::Root, here()).key;
        let task = tree.insert(Some(root), NodeKind::Task, here()).key;
        let shield = tree.insert(Some(task), NodeKind::Shield, here()).key;
        let child = tree.insert(Some(shield), NodeKind::Task, here()).key;
        let other = tree.insert(Some(root), NodeKind::Task, here()).key;
        tree.node_mut(shield).phase = Phase::Completing;
        tree.node_mut(task).phase = Phase::Completing;
        let mut wake = Vec::new();
        tree.finish(child, &mut wake);
        assert_eq!(tree.len(), 3, "child and the left shield are gone");
        assert!(!tree.has_children(task));
        tree.finish(task, &mut wake);
        tree.finish(other, &mut wake);
        assert!(!tree.has_children(root));
    }
}
