//! Which runtime is current on this thread: the one whose loop it runs. (Which node of its
//! tree is being polled is the poll frame's: [`crate::frame`].)
//!
//! # Ground rules
//!
//! - `CONTEXT` is set by [`enter`] for the duration of a `block_on` and cleared by the guard
//!   it returns, even when unwinding. Setting it twice on one thread is the nested-`block_on`
//!   mistake and panics with the fix.
//! - Everything else only *reads* it: a shared borrow of the thread-local, never held while
//!   user code runs (the executor polls tasks through its own `Rc<Core>`, not through here).

use std::cell::RefCell;
use std::rc::Rc;

use crate::core::Core;
use crate::frame;
use crate::report;

thread_local! {
    /// The runtime current on this thread, if any.
    static CONTEXT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Runs `f` with the runtime current on this thread; `None` outside a runtime (or while the
/// thread is being torn down).
///
/// Always inlined: it is on the path of every poll, wake and await point, and as a call it
/// cost about 30 instructions more per yield than inline (callgrind, the yield benchmark).
#[inline(always)]
pub(crate) fn with_core<R>(f: impl FnOnce(&Rc<Core>) -> R) -> Option<R> {
    CONTEXT
        .try_with(|cell| cell.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Like [`with_core`], but a missing runtime is the caller's mistake: panic naming `what`.
#[track_caller]
pub(crate) fn expect_core<R>(what: &str, f: impl FnOnce(&Rc<Core>) -> R) -> R {
    match with_core(f) {
        Some(r) => r,
        None => panic!(
            "{what} called outside a treeloop runtime: call it inside `treeloop::block_on` \
             (or a task spawned from it)"
        ),
    }
}

/// Clears `CONTEXT` when dropped.
pub(crate) struct EnterGuard(());

/// What a nested `block_on` is told.
const NESTED: &str = "block_on called inside a treeloop runtime: a nested block_on would stall \
                      the event loop; `.await` the future instead, or `treeloop::spawn` it";

/// Panics with [`NESTED`] inside a runtime: `block_on` checks before it starts a run.
#[track_caller]
pub(crate) fn assert_outside() {
    assert!(!in_runtime(), "{NESTED}");
}

/// Makes `core` this thread's runtime until the guard is dropped.
pub(crate) fn enter(core: Rc<Core>) -> EnterGuard {
    CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        assert!(slot.is_none(), "{NESTED}");
        frame::set_shields_lazy(!core.eager_shields());
        report::replace_sink(core.sink());
        *slot = Some(core);
    });
    EnterGuard(())
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        // Take the core out first and drop it after the borrow ends: dropping it may run
        // destructors that look at CONTEXT.
        let core = CONTEXT
            .try_with(|cell| cell.borrow_mut().take())
            .ok()
            .flatten();
        frame::set_shields_lazy(false);
        report::replace_sink(None);
        drop(core);
    }
}

/// Whether this thread is inside a treeloop runtime.
pub fn in_runtime() -> bool {
    with_core(|_| ()).is_some()
}
