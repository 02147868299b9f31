//! Who is asking, from where: the context every domain call takes, and the one place where the
//! server asks the core for a decision and records refusals in the audit chain.

use cryowarden_core::{Action, Actor, Allowed, AuditAction, Decision, Resource, authorize};

use crate::audit::{self, NewEvent, Outcome, Who};
use crate::db::{Db, WriteTx};
use crate::error::StoreError;

/// The caller of a domain operation.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// `None` for the server acting on its own (bootstrap, token redemption).
    pub actor: Option<Actor>,
    pub who: Who,
    pub impersonator: Option<Who>,
    /// The client's address (or `cli` for offline commands).
    pub source: String,
    /// While a project or folder admin impersonates: the one project the session may reach.
    pub project_scope: Option<i64>,
    /// While someone impersonates a group (a lab): that lab. The session acts as a plain member
    /// of it, of no other lab and of no project directly.
    pub group_scope: Option<i64>,
}

/// What an action is aimed at, as the audit log names it.
#[derive(Clone, Debug)]
pub struct Target {
    pub kind: &'static str,
    pub id: Option<String>,
    pub name: Option<String>,
}

impl Target {
    pub fn instance() -> Target {
        Target {
            kind: "instance",
            id: None,
            name: None,
        }
    }
    pub fn user(id: i64, name: &str) -> Target {
        Target {
            kind: "user",
            id: Some(id.to_string()),
            name: Some(name.to_owned()),
        }
    }
}

impl Ctx {
    pub fn system(purpose: &str, source: &str) -> Ctx {
        Ctx {
            actor: None,
            who: Who::system(purpose),
            impersonator: None,
            source: source.to_owned(),
            project_scope: None,
            group_scope: None,
        }
    }

    pub fn for_actor(actor: Actor, username: &str, source: String) -> Ctx {
        Ctx {
            actor: Some(actor),
            who: Who {
                id: Some(actor.user.0),
                name: username.to_owned(),
            },
            impersonator: None,
            source,
            project_scope: None,
            group_scope: None,
        }
    }

    /// Whether the session is confined to one project (a scoped impersonation) that is not
    /// `project`: such a project is then out of reach, as if it did not exist.
    pub fn outside_scope(&self, project: i64) -> bool {
        self.project_scope.is_some_and(|p| p != project)
    }

    /// Asks [`authorize`]; a refusal is recorded in the audit chain and returned as an error.
    pub async fn authorize(
        &self,
        db: &Db,
        action: Action,
        resource: Resource,
        target: &Target,
    ) -> Result<Allowed, StoreError> {
        let Some(actor) = &self.actor else {
            return Err(StoreError::Internal(format!(
                "{} asked to authorize {} with no actor",
                self.who.name,
                action.name()
            )));
        };
        match authorize(actor, action, &resource) {
            Decision::Allow(allowed) => Ok(allowed),
            Decision::Deny(denied) => {
                self.record(
                    db,
                    action,
                    target,
                    Outcome::Denied,
                    Some(denied.reason.clone()),
                    None,
                    None,
                )
                .await?;
                Err(denied.into())
            }
        }
    }

    /// An event attributed to this caller.
    pub fn event(
        &self,
        action: impl Into<AuditAction>,
        target: &Target,
        outcome: Outcome,
        reason: Option<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> NewEvent {
        NewEvent {
            actor: self.who.clone(),
            impersonator: self.impersonator.clone(),
            action: action.into().name().into_owned(),
            target_kind: target.kind,
            target_id: target.id.clone(),
            target: target.name.clone(),
            outcome,
            reason,
            before,
            after,
            source: self.source.clone(),
        }
    }

    /// Appends a successful change by this caller to the change's own transaction, so that the
    /// change and its audit event commit or vanish together.
    pub async fn audit_ok(
        &self,
        tx: &mut WriteTx,
        action: impl Into<AuditAction>,
        target: &Target,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        audit::append(
            tx,
            self.event(action, target, Outcome::Ok, None, before, after),
        )
        .await
        .map(|_| ())
    }

    /// Records an event in a transaction of its own. A refusal (`Denied`) that repeats one
    /// already written ten times within the minute, or whose actor is past their budget of
    /// refusals, is counted and written with its count when the window ends
    /// (`audit/repeats.rs`).
    #[expect(
        clippy::too_many_arguments,
        reason = "one audit event's fields, named at every call site"
    )]
    pub async fn record(
        &self,
        db: &Db,
        action: impl Into<AuditAction>,
        target: &Target,
        outcome: Outcome,
        reason: Option<String>,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<(), StoreError> {
        let event = self.event(action, target, outcome, reason, before, after);
        match outcome {
            Outcome::Denied => audit::record_refusal(db, event).await.map(|_| ()),
            Outcome::Ok => audit::record(db, event).await.map(|_| ()),
        }
    }
}
