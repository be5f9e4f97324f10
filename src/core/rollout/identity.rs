//! One policy per target: which policy holds a Deployment that several policies name. Pure.

use jiff::Timestamp;

/// A policy that names the target, as the operator's cache shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimant {
    pub uid: String,
    pub name: String,
    pub created: Option<Timestamp>,
    /// It has a rollout in flight.
    pub active: bool,
}

/// The policy that holds the target. The owner of the canary holds it (only it may finish or
/// undo what it began); without a canary, a policy with a rollout in flight; else the oldest,
/// then the first by name. Every policy computes the same answer from the same cache, so exactly
/// one acts and the others stand aside.
pub fn holder<'a>(claimants: &'a [Claimant], canary_owner_uid: Option<&str>) -> Option<&'a Claimant> {
    if let Some(owner) = canary_owner_uid.and_then(|uid| claimants.iter().find(|c| c.uid == uid)) {
        return Some(owner);
    }
    claimants.iter().min_by(|a, b| {
        let key = |c: &Claimant| (!c.active, c.created.is_none(), c.created, c.name.clone());
        key(a).cmp(&key(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(uid: &str, created: i64, active: bool) -> Claimant {
        Claimant {
            uid: uid.into(),
            name: format!("policy-{uid}"),
            created: Some(Timestamp::from_second(created).unwrap()),
            active,
        }
    }

    #[test]
    fn the_oldest_holds_an_idle_target() {
        let all = [c("b", 200, false), c("a", 100, false)];
        assert_eq!(holder(&all, None).map(|h| h.uid.as_str()), Some("a"));
    }

    #[test]
    fn a_rollout_in_flight_keeps_its_target() {
        let all = [c("old", 100, false), c("busy", 200, true)];
        assert_eq!(holder(&all, None).map(|h| h.uid.as_str()), Some("busy"));
    }

    #[test]
    fn the_canary_owner_holds_it_whatever_the_rest_say() {
        let all = [c("old", 100, true), c("owner", 300, false)];
        assert_eq!(holder(&all, Some("owner")).map(|h| h.uid.as_str()), Some("owner"));
        // An owner that no longer names the target does not count.
        assert_eq!(holder(&all, Some("gone")).map(|h| h.uid.as_str()), Some("old"));
    }

    #[test]
    fn ties_go_by_name_and_nobody_claims_nothing() {
        let mut x = c("x", 100, false);
        x.name = "b".into();
        let mut y = c("y", 100, false);
        y.name = "a".into();
        assert_eq!(holder(&[x, y], None).map(|h| h.uid.as_str()), Some("y"));
        assert_eq!(holder(&[], None), None);
    }
}
