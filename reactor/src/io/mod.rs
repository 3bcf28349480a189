//! Readiness-based I/O: the table of registered sources and the operation loop over it.

pub(crate) mod slots;
pub(crate) mod source;
