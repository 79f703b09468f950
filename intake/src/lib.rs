//! GitOps intake: Git and folder sources, render, validate, apply with an
//! inventory and prune, drift reports and self-heal.
//!
//! Today: [`files`] finds and reads manifest files, [`validate`] decodes and
//! checks them on all cores.

pub mod files;
pub mod validate;
