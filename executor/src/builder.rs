//! `task::Builder`: spawn a task with a name, for dumps, watchdog reports and panics.
//!
//! A name costs nothing unless given: it is kept beside the tree (a map from node to name),
//! not in every node.

use std::future::Future;
use std::panic::Location;

use crate::context;
use crate::join::JoinHandle;
use crate::region::{RegionHandle, SpawnRefused};

/// Configures a task before spawning it.
///
/// ```
/// use treeloop::{block_on, dump, task};
/// block_on(async {
///     let conn = task::Builder::new().name("conn 42").spawn(std::future::pending::<()>());
///     let tree = dump();
///     assert_eq!(tree.named("conn 42").count(), 1);
///     conn.abort();
/// });
/// ```
#[derive(Clone, Debug, Default)]
#[must_use = "a task builder does nothing until `spawn` is called"]
pub struct Builder {
    /// The task's name.
    name: Option<Box<str>>,
}

impl Builder {
    /// A builder for an unnamed task.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the task: dumps, watchdog reports and slow-poll warnings show it.
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into().into_boxed_str());
        self
    }

    /// Spawns `future` like [`spawn`](crate::spawn): a child of the task (or region) being
    /// polled.
    ///
    /// # Panics
    ///
    /// Outside a treeloop runtime.
    #[track_caller]
    pub fn spawn<F>(self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let location = Location::caller();
        context::expect_core("spawn", |core| {
            crate::task::spawn_in(core, core.open_spawn_parent(), future, location, self.name)
        })
    }

    /// Spawns `future` into `region` like [`RegionHandle::spawn`].
    #[track_caller]
    pub fn spawn_in<F>(
        self,
        region: &RegionHandle,
        future: F,
    ) -> Result<JoinHandle<F::Output>, SpawnRefused>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        region.spawn_named(future, self.name, Location::caller())
    }
}
