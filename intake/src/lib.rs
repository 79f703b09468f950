//! GitOps intake: Git and folder sources, render, validate, apply with an
//! inventory and prune, drift reports and self-heal.
//!
//! Start at [`engine`] (the steps of one sync) and [`controller`] (the
//! GitSource reconciler that runs them; a source waits for the sources it
//! depends on, [`dependencies`]). A revision flows:
//! [`source`] (a snapshot of files; a kustomization built by
//! [`kustomize`]) → [`substitute`] (post-build variables) → [`render`] (validated objects, via
//! [`validate`], custom resources against the source's and the cluster's
//! [`definitions`]) → [`sync`] (dry run, server-side apply with
//! definitions first, prune) → [`status`];
//! then [`drift`] compares it with the cluster ([`live`]), [`report`]
//! publishes the result and [`heal`] reverts it when asked; [`health`]
//! judges what a sync applied (kstatus's rules) and [`healthcheck`] reads
//! it from the cluster and waits for it (between sync waves, for
//! [`hooks`]); [`notify`] records Events and sends each sync, failure,
//! drift and heal to the Notifiers that ask.

pub mod controller;
pub mod definitions;
pub mod dependencies;
pub mod diff;
pub mod drift;
pub mod engine;
pub mod files;
pub mod heal;
pub mod health;
pub mod healthcheck;
pub mod hooks;
pub mod kustomize;
pub mod live;
pub mod metrics;
pub mod notify;
pub mod object;
pub mod owner;
pub mod progress;
pub mod render;
pub mod report;
pub mod source;
pub mod status;
pub mod substitute;
pub mod sync;
pub mod validate;
pub mod webhook;
