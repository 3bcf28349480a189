//! What a scope knows about its members while they run: failures, the first panic, whether
//! it cancelled itself.
//!
//! # Ground rules
//!
//! - Shared (`Rc`) by the scope future, every `Scope` handle and every member wrapper; only
//!   touched on the loop thread, in borrows that never span user code.
//! - Recording a failure never loses it: real errors are pushed in order; cancellation-only
//!   errors are dropped here, by design (R14).
//! - In a fail-fast scope the first real failure or panic cancels the scope's region with
//!   reason `Failure` (R13); a supervisor only records (R18).

use std::cell::{Cell, RefCell};

use treeloop_executor::{CancelReason, Payload, RegionHandle};

use crate::error::Cancellation;

/// How a scope reacts to a member's failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The first failure cancels every other member and the body (nursery / TaskGroup).
    FailFast,
    /// Failures are collected; the others keep running (supervisor).
    Supervise,
}

/// Who, if anyone, cancelled the scope from the inside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SelfCancel {
    /// Nobody inside called `Scope::cancel`.
    No,
    /// `Scope::cancel` was called: the scope returns normally (R15).
    Requested,
}

/// The scope's record of its members.
pub(crate) struct ScopeState<E> {
    /// The scope's region: members are spawned into it, failures cancel it.
    pub(crate) region: RegionHandle,
    /// Fail fast or supervise.
    pub(crate) policy: Policy,
    /// Real failures, in the order they happened.
    pub(crate) failures: RefCell<Vec<E>>,
    /// The first panic of a member or the body; re-raised by the scope after cleanup.
    pub(crate) panic: RefCell<Option<Payload>>,
    /// Whether `Scope::cancel` was called.
    pub(crate) self_cancel: Cell<SelfCancel>,
}

impl<E: Cancellation> ScopeState<E> {
    pub(crate) fn new(region: RegionHandle, policy: Policy) -> Self {
        ScopeState {
            region,
            policy,
            failures: RefCell::new(Vec::new()),
            panic: RefCell::new(None),
            self_cancel: Cell::new(SelfCancel::No),
        }
    }

    /// A member or the body returned `Err(error)`.
    pub(crate) fn fail(&self, error: E) {
        if error.as_cancelled().is_some() {
            // Only the cancellation itself: a consequence, not a failure (R14).
            return;
        }
        self.failures.borrow_mut().push(error);
        self.on_failure();
    }

    /// A member or the body panicked. The first payload is kept for re-raising; later ones
    /// are reported, never silently dropped.
    pub(crate) fn panicked(&self, payload: Payload) {
        let mut slot = self.panic.borrow_mut();
        if slot.is_none() {
            *slot = Some(payload);
        } else {
            report_extra_panic(&payload);
        }
        drop(slot);
        self.on_failure();
    }

    fn on_failure(&self) {
        if self.policy == Policy::FailFast {
            // The first reason wins, so later failures do not overwrite `Failure`.
            self.region.cancel(CancelReason::Failure);
        }
    }
}

impl<E> Drop for ScopeState<E> {
    /// A panic still here was never re-raised: the scope's future was dropped before it
    /// could be (its members outlived it). Report it rather than lose it (R17).
    fn drop(&mut self) {
        if let Some(payload) = self.panic.get_mut().take() {
            treeloop_executor::report::report(format_args!(
                "treeloop: a member of a scope panicked after the scope's future was dropped, \
                 so nobody can re-raise it: {}",
                treeloop_executor::panic_message(&payload)
            ));
        }
    }
}

/// A second panic in one scope: the first is re-raised, this one is reported.
fn report_extra_panic(payload: &Payload) {
    treeloop_executor::report::report(format_args!(
        "treeloop: another member of the scope panicked too (the scope re-raises the first): \
         {}",
        treeloop_executor::panic_message(payload)
    ));
}
