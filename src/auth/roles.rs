//! Who may call what: one table, deny by default.

use serde::{Deserialize, Serialize};

use crate::domain::names::named_enum;

named_enum! {
    /// What a caller is for.
    pub enum Role {
        /// Sends leads and engagement signals (forms, scanners, ad platforms, webinar tools).
        Submitter => "submitter",
        /// Works leads: discovery findings, contact attempts, conversions; reads leads.
        Sales => "sales",
        /// Decides against or ahead of the engine; reads leads.
        Manager => "manager",
        /// Reads leads, the audit trail, the funnel and the decision stream.
        Analyst => "analyst",
        /// Manages policies.
        Admin => "admin",
    }
}

use Role::{Admin, Analyst, Manager, Sales, Submitter};

/// Every RPC and the roles that may call it. An RPC missing here is served to no one.
pub const RPC_ROLES: &[(&str, &[Role])] = &[
    ("/leadgate.v1.LeadService/SubmitLead", &[Submitter]),
    ("/leadgate.v1.LeadService/RecordEngagement", &[Submitter]),
    ("/leadgate.v1.LeadService/GetLead", &[Sales, Manager, Analyst]),
    ("/leadgate.v1.LeadService/ListLeads", &[Sales, Manager, Analyst]),
    ("/leadgate.v1.LeadService/ExplainLead", &[Sales, Manager, Analyst]),
    ("/leadgate.v1.LeadService/RecordDiscoveryCall", &[Sales]),
    ("/leadgate.v1.LeadService/RecordContactAttempt", &[Sales]),
    ("/leadgate.v1.LeadService/ConvertLead", &[Sales, Manager]),
    ("/leadgate.v1.LeadService/OverrideLeadState", &[Manager]),
    ("/leadgate.v1.LeadService/ReleaseLeadOverride", &[Manager]),
    ("/leadgate.v1.AuditService/ListAuditEvents", &[Analyst]),
    ("/leadgate.v1.AuditService/VerifyAuditTrail", &[Analyst]),
    ("/leadgate.v1.AuditService/GetAuditDigest", &[Analyst]),
    ("/leadgate.v1.AuditService/WatchDecisions", &[Analyst]),
    (
        "/leadgate.v1.AuditService/ListQuarantinedAuditEntries",
        &[Analyst, Admin],
    ),
    ("/leadgate.v1.ReportService/GetFunnelReport", &[Analyst]),
    ("/leadgate.v1.PolicyService/GetPolicy", &[Admin, Analyst]),
    ("/leadgate.v1.PolicyService/ListPolicies", &[Admin, Analyst]),
    ("/leadgate.v1.PolicyService/ValidatePolicy", &[Admin]),
    ("/leadgate.v1.PolicyService/SimulatePolicy", &[Admin]),
];

/// Services any authenticated caller may use (describing the API).
pub const OPEN_TO_AUTHENTICATED: &[&str] = &[
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Services anyone may use, without credentials (Kubernetes probes).
pub const OPEN_TO_ALL: &[&str] = &["/grpc.health.v1.Health/"];

/// A set of roles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles(u8);

impl Roles {
    pub const ALL: Roles = Roles(0b1_1111);

    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |bits, r| bits | (1 << *r as u8)))
    }

    pub fn has(self, role: Role) -> bool {
        self.0 & (1 << role as u8) != 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Role::ALL
            .iter()
            .filter(|r| self.has(**r))
            .map(|r| r.as_str())
            .collect()
    }
}

/// What a method needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without credentials.
    Open,
    /// Any authenticated caller.
    Authenticated,
    /// An authenticated caller with one of these roles.
    Roles(&'static [Role]),
    /// No such method (not in the table): answered `UNIMPLEMENTED` to authenticated callers,
    /// and never passed on to a service.
    Unknown,
}

/// What calling `path` (`/package.Service/Method`) needs.
pub fn access(path: &str) -> Access {
    if OPEN_TO_ALL.iter().any(|p| path.starts_with(p)) {
        return Access::Open;
    }
    if OPEN_TO_AUTHENTICATED.iter().any(|p| path.starts_with(p)) {
        return Access::Authenticated;
    }
    RPC_ROLES
        .iter()
        .find(|(rpc, _)| *rpc == path)
        .map_or(Access::Unknown, |(_, roles)| Access::Roles(roles))
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn every_rpc_of_the_contract_is_in_the_table() {
        let set = prost_types::FileDescriptorSet::decode(crate::grpc::FILE_DESCRIPTOR_SET).unwrap();
        let mut methods = Vec::new();
        for file in set.file.iter().filter(|f| f.package() == "leadgate.v1") {
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!("/leadgate.v1.{}/{}", service.name(), method.name()));
                }
            }
        }
        assert_eq!(methods.len(), RPC_ROLES.len());
        for method in methods {
            assert!(
                matches!(access(&method), Access::Roles(_)),
                "{method} is not in the roles table"
            );
        }
    }

    #[test]
    fn unknown_methods_are_unknown_and_health_is_open() {
        assert_eq!(access("/leadgate.v1.LeadService/DropEverything"), Access::Unknown);
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(
            access("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            Access::Authenticated
        );
    }

    #[test]
    fn role_sets_hold_what_they_are_given() {
        let r = Roles::of(&[Role::Sales, Role::Analyst]);
        assert!(r.has(Role::Sales) && r.has(Role::Analyst) && !r.has(Role::Admin));
        assert_eq!(r.names(), ["sales", "analyst"]);
        assert!(Role::ALL.iter().all(|role| Roles::ALL.has(*role)));
    }
}
