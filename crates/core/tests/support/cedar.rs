//! What the Cedar twin test and the authorization benchmark share: the hand-written policy set
//! (`tests/policies.cedar`), entity uids, and one principal entity per site role.

use std::collections::HashMap;
use std::str::FromStr;

use cedar_policy::{Entities, Entity, EntityUid, PolicySet, RestrictedExpression};
use cryowarden_core::SiteRole;

pub const POLICIES: &str = include_str!("../policies.cedar");

/// The policy set, parsed; a syntax error names the file.
pub fn policies() -> PolicySet {
    PolicySet::from_str(POLICIES).unwrap_or_else(|e| panic!("tests/policies.cedar: {e:?}"))
}

pub fn uid(text: &str) -> EntityUid {
    EntityUid::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// For each site role, the entity set holding `principal` with that `site_role` attribute.
pub fn role_entities(principal: &EntityUid) -> HashMap<SiteRole, Entities> {
    SiteRole::ALL
        .iter()
        .map(|role| {
            let attrs = HashMap::from([(
                "site_role".to_owned(),
                RestrictedExpression::new_string(role.as_str().to_owned()),
            )]);
            let user = Entity::new(principal.clone(), attrs, Default::default()).expect("entity");
            (
                *role,
                Entities::from_entities([user], None).expect("entities"),
            )
        })
        .collect()
}
