use crate::names::named_enum;

named_enum! {
    /// A setting of the admin console (`spec/roles.md` §1).
    pub enum Setting {
        LookAndFeel = "look-and-feel",
        SiteSettings = "site-settings",
        Scheduler = "scheduler",
        Compute = "compute",
        ClusterCustomVariables = "cluster-custom-variables",
        LaneRestrictions = "lane-restrictions",
        StorageRoots = "storage-roots",
        Authentication = "authentication",
        LdapSync = "ldap-sync",
        ExternalRedirectHosts = "external-redirect-hosts",
        Email = "email",
        LimitActiveUsers = "limit-active-users",
        SystemMaintenance = "system-maintenance",
        TermsOfUse = "terms-of-use",
        ExperimentalFeatures = "experimental-features",
        AuditLog = "audit-log",
        AuditLogMaintenance = "audit-log-maintenance",
        StartupProperties = "startup-properties",
        EnvironmentVariables = "environment-variables",
        SystemProperties = "system-properties",
        DataSources = "data-sources",
        InstanceLogs = "instance-logs",
        DiagnosticReport = "diagnostic-report",
        RunningTasks = "running-tasks",
        MemoryUsage = "memory-usage",
        Queries = "queries",
        SiteErrors = "site-errors",
        Loggers = "loggers",
        CheckDatabase = "check-database",
        SqlScripts = "sql-scripts",
        SiteValidation = "site-validation",
        Credits = "credits",
    }
}

named_enum! {
    /// How much of a setting a role may touch.
    pub enum Access {
        None = "none",
        ReadOnly = "read-only",
        All = "all",
    }
}
