//! The audit log's vocabulary: every event names either a guarded [`Action`] (its
//! [`Action::name`]) or one of the [`Event`]s below, which record what is not itself a guarded
//! action (a sign-in, a job queued, an export). Nothing else is ever written as an action.

use std::borrow::Cow;

use crate::names::named_enum;
use crate::{Action, Activity, DataAction, Setting};

named_enum! {
    /// What an audit event records when it is not one of [`Action`]'s names.
    pub enum Event {
        AcceptTerms = "accept-terms",
        AddLabMember = "add-lab-member",
        AddProjectGroupMember = "add-project-group-member",
        AddTarget = "add-target",
        ArchiveProjectData = "archive-project-data",
        ArchiveAuditLog = "archive-audit-log",
        BootstrapSiteAdmin = "bootstrap-site-admin",
        BrowseLabData = "browse-lab-data",
        BrowseProjectFiles = "browse-project-files",
        ChangeLabMemberRole = "change-lab-member-role",
        ChangeSiteRole = "change-site-role",
        ClearJob = "clear-job",
        ConnectCluster = "connect-cluster",
        CreateApiToken = "create-api-token",
        CreateJob = "create-job",
        CreateLab = "create-lab",
        CreateLane = "create-lane",
        CreateProjectGroup = "create-project-group",
        DeleteLab = "delete-lab",
        DeleteProjectData = "delete-project-data",
        DeleteProjectGroup = "delete-project-group",
        DownloadReport = "download-report",
        ExportAuditLog = "export-audit-log",
        ExportLabMembers = "export-lab-members",
        IssueBootstrapToken = "issue-bootstrap-token",
        IssueRegisterToken = "issue-register-token",
        IssueResetToken = "issue-reset-token",
        KillJob = "kill-job",
        LockAccount = "lock-account",
        Login = "login",
        Logout = "logout",
        PutCommandTemplate = "put-command-template",
        /// An actor's refusals past their budget, counted per action into one event.
        RefusalsThrottled = "refusals-throttled",
        QueueJob = "queue-job",
        Register = "register",
        RemoveLabMember = "remove-lab-member",
        RemoveLane = "remove-lane",
        RemoveProjectGroupMember = "remove-project-group-member",
        RemoveProjectMember = "remove-project-member",
        ResetPassword = "reset-password",
        RevokeApiToken = "revoke-api-token",
        SendTestEmail = "send-test-email",
        SetFolderAdmins = "set-folder-admins",
        SetInstanceCustomVars = "set-instance-custom-vars",
        SetLabRoots = "set-lab-roots",
        SetLabUnixAccount = "set-lab-unix-account",
        SetLaneRestrictions = "set-lane-restrictions",
        SetProjectMember = "set-project-member",
        SetTargetCustomVars = "set-target-custom-vars",
        StartImpersonation = "start-impersonation",
        StopImpersonation = "stop-impersonation",
        UpdateLab = "update-lab",
        UpdateProject = "update-project",
        UpdateWorkspace = "update-workspace",
        ViewLab = "view-lab",
    }
}

named_enum! {
    /// An action of an Admin Console diagnostic (`check-database/backup`): written after the
    /// setting's name.
    pub enum SettingAction {
        Backup = "backup",
        Integrity = "integrity",
        Reset = "reset",
        Run = "run",
        Set = "set",
        Vacuum = "vacuum",
    }
}

/// The action an audit event names: a guarded action, an [`Event`], or a console setting's
/// action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditAction {
    Guarded(Action),
    Event(Event),
    OnSetting(Setting, SettingAction),
}

impl AuditAction {
    /// The name the audit log writes and filters by.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            AuditAction::Guarded(Action::Activity(a)) => Cow::Borrowed(a.as_str()),
            AuditAction::Guarded(Action::Data(d)) => Cow::Borrowed(d.as_str()),
            AuditAction::Guarded(a) => Cow::Owned(a.name()),
            AuditAction::Event(e) => Cow::Borrowed(e.as_str()),
            AuditAction::OnSetting(s, a) => Cow::Owned(format!("{s}/{a}")),
        }
    }
}

impl From<Action> for AuditAction {
    fn from(a: Action) -> Self {
        AuditAction::Guarded(a)
    }
}

impl From<Activity> for AuditAction {
    fn from(a: Activity) -> Self {
        AuditAction::Guarded(Action::Activity(a))
    }
}

impl From<DataAction> for AuditAction {
    fn from(d: DataAction) -> Self {
        AuditAction::Guarded(Action::Data(d))
    }
}

impl From<(Setting, SettingAction)> for AuditAction {
    fn from((setting, action): (Setting, SettingAction)) -> Self {
        AuditAction::OnSetting(setting, action)
    }
}

impl From<Event> for AuditAction {
    fn from(e: Event) -> Self {
        AuditAction::Event(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_event_shares_a_name_with_a_guarded_action() {
        for e in Event::ALL {
            assert_eq!(
                Action::parse(e.as_str()),
                None,
                "{e} is also an action's name"
            );
        }
    }

    #[test]
    fn names_are_the_actions_own() {
        assert_eq!(
            AuditAction::from(Activity::CreateUser).name(),
            "create-user"
        );
        assert_eq!(
            AuditAction::from(DataAction::ImportData).name(),
            "import-data"
        );
        assert_eq!(AuditAction::from(Event::QueueJob).name(), "queue-job");
        let read = Action::ReadSetting(crate::Setting::AuditLog);
        assert_eq!(AuditAction::from(read).name(), read.name());
        let backup = AuditAction::OnSetting(Setting::CheckDatabase, SettingAction::Backup);
        assert_eq!(backup.name(), "check-database/backup");
    }
}
