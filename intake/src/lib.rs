//! GitOps intake: Git and folder sources, render, validate, apply with an
//! inventory and prune, drift reports and self-heal.
