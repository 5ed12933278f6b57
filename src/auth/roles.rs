//! Who may call what: one exhaustive match over the contract's RPCs, deny by default.

use serde::{Deserialize, Serialize};

use crate::domain::names::named_enum;
use crate::grpc::Rpc;

named_enum! {
    /// What a caller is for.
    pub enum Role {
        /// Sends leads and engagement signals (forms, scanners, ad platforms, webinar tools).
        Submitter => "submitter",
        /// Works leads: discovery findings, contact attempts, corrections, conversions; reads leads.
        Sales => "sales",
        /// Decides against or ahead of the engine; reads leads.
        Manager => "manager",
        /// Reads leads, the audit trail, the funnel and the decision stream.
        Analyst => "analyst",
        /// Manages policies.
        Admin => "admin",
        /// Answers data-subject requests: erases and exports a person's data. Nothing else, and
        /// no other role may: an erasure cannot be undone.
        Privacy => "privacy",
    }
}

use Role::{Admin, Analyst, Manager, Privacy, Sales, Submitter};

/// The roles that may call `rpc`. Every RPC of the contract is matched here, with no catch-all:
/// an RPC added to the protos does not compile until it is given its roles.
pub const fn roles(rpc: Rpc) -> &'static [Role] {
    match rpc {
        Rpc::SubmitLead => &[Submitter],
        // An import is many submissions: lists come from the systems and people that submit
        // (marketing operations, trade-show scanners), not from sales, who correct one lead.
        Rpc::ImportLeads => &[Submitter],
        Rpc::RecordEngagement => &[Submitter],
        Rpc::GetLead => &[Sales, Manager, Analyst],
        Rpc::ListLeads => &[Sales, Manager, Analyst],
        Rpc::ExplainLead => &[Sales, Manager, Analyst],
        Rpc::RecordDiscoveryCall => &[Sales],
        Rpc::RecordContactAttempt => &[Sales],
        // Corrections come from the people who talk to the contact.
        Rpc::UpdateLead => &[Sales],
        Rpc::EraseLead => &[Privacy],
        Rpc::ExportLeadData => &[Privacy],
        Rpc::ConvertLead => &[Sales, Manager],
        // Duplicates are found by the people who work leads (sales, who meet the same person
        // twice) and by those who oversee them (managers cleaning up a team's pipeline); a merge
        // moves a lead's history, so submitters and analysts may not.
        Rpc::MergeLeads => &[Sales, Manager],
        Rpc::OverrideLeadState => &[Manager],
        Rpc::ReleaseLeadOverride => &[Manager],
        Rpc::ListAuditEvents => &[Analyst],
        Rpc::VerifyAuditTrail => &[Analyst],
        Rpc::GetAuditDigest => &[Analyst],
        Rpc::WatchDecisions => &[Analyst],
        Rpc::ListQuarantinedAuditEntries => &[Analyst, Admin],
        Rpc::GetFunnelReport => &[Analyst],
        Rpc::GetPolicy => &[Admin, Analyst],
        Rpc::ListPolicies => &[Admin, Analyst],
        Rpc::ValidatePolicy => &[Admin],
        Rpc::SimulatePolicy => &[Admin],
    }
}

/// Every RPC's path and the roles that may call it (from `roles`), in the contract's order.
pub const RPC_ROLES: &[(&str, &[Role])] = &RPC_ROLE_TABLE;

const RPC_ROLE_TABLE: [(&str, &[Role]); Rpc::ALL.len()] = {
    let mut table: [(&str, &[Role]); Rpc::ALL.len()] = [("", &[]); Rpc::ALL.len()];
    let mut i = 0;
    while i < table.len() {
        table[i] = (Rpc::ALL[i].path(), roles(Rpc::ALL[i]));
        i += 1;
    }
    table
};

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
    pub const ALL: Roles = Roles((1 << Role::ALL.len()) - 1);

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
    /// No such method (not one of the contract's): answered `UNIMPLEMENTED` to authenticated callers,
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
    Rpc::from_path(path).map_or(Access::Unknown, |rpc| Access::Roles(roles(rpc)))
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
    fn every_rpc_is_found_by_its_path() {
        for rpc in Rpc::ALL {
            assert_eq!(Rpc::from_path(rpc.path()), Some(*rpc));
            assert_eq!(rpc.path(), format!("/{}/{}", rpc.service(), rpc.name()));
            assert!(Rpc::SERVICES.contains(&rpc.service()));
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

    #[test]
    fn merges_need_sales_or_a_manager() {
        assert_eq!(
            access("/leadgate.v1.LeadService/MergeLeads"),
            Access::Roles(&[Role::Sales, Role::Manager])
        );
    }

    #[test]
    fn corrections_need_the_role_that_works_leads() {
        assert_eq!(roles(Rpc::UpdateLead), roles(Rpc::RecordContactAttempt));
        assert_eq!(
            access("/leadgate.v1.LeadService/UpdateLead"),
            Access::Roles(&[Role::Sales])
        );
    }
}
