//! The pure domain of cryowarden: identifiers, roles, the permission tables of `spec/roles.md`
//! and the one authorization choke point, [`authorize`].
//!
//! This crate does no I/O. It is separate so that it cannot reach storage or HTTP by accident, and
//! so that its rules can be tested and benchmarked alone.

mod actions;
mod authorize;
mod data;
pub mod events;
mod ids;
pub mod jobs;
mod names;
mod roles;
mod settings;
pub mod table;
mod user;

pub use actions::{Action, Activity};
pub use authorize::{
    Actor, Allowed, Bound, Decision, Denied, Impersonation, ImpersonationScope, Resource,
    ScopedFacts, TargetUser, WrongProof, authorize, explain_allowed, permits,
};
pub use data::{DataAction, DataScope, ImportPolicy, LabRole, ProjectRole};
pub use events::{AuditAction, Event, SettingAction};
pub use ids::UserId;
pub use roles::{Column, SiteRole};
pub use settings::{Access, Setting};
pub use user::{UserStatus, limits, username_problem};
