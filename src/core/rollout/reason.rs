//! The reasons of the Events a decision records: one name each, with the Event type it always
//! has, so that a reason is never recorded as Normal in one place and Warning in another.

use super::EventType;

macro_rules! reasons {
    ($($kind:ident $name:ident: $doc:literal,)*) => {
        /// Why an Event was recorded (its `reason`, as `kubectl get events` shows it).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(#[doc = $doc] $name,)*
        }

        impl Reason {
            pub const ALL: &[Reason] = &[$(Reason::$name,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => stringify!($name),)*
                }
            }

            pub fn kind(self) -> EventType {
                match self {
                    $(Reason::$name => EventType::$kind,)*
                }
            }
        }
    };
}

reasons! {
    Normal RolloutStarted: "A rollout of a new pool configuration began.",
    Normal StepStarted: "A step's canary pods are available and its soak began.",
    Normal StepAdvanced: "A step passed; the canary scales to the next step's weight.",
    Warning SoakPaused: "Canary pods the soak counts on went missing: its clock stops.",
    Normal SoakResumed: "The missing canary pods are back: the soak's clock runs again.",
    Warning AnalysisFailed: "An analysis failed a gate.",
    Warning AnalysisInconclusive: "The environment is at fault (the stable suffered alike, or Redis went away or changed): the soak's clock stops, nothing is counted against the configuration.",
    Normal EnvironmentRecovered: "An analysis judged the configuration again after an inconclusive spell: the soak's clock runs again.",
    Warning EnvironmentDegraded: "The environment has been at fault for longer than progressDeadline: the rollout holds, never promotes, and blames nothing on the configuration.",
    Warning ReplicasHandedOver: "Another writer took the target's replicas during a rollout.",
    Normal Promoting: "The promotion began.",
    Normal Promoted: "The target runs the new configuration; the canary is gone.",
    Warning PromotionStalled: "The target has not rolled out the promoted configuration in time.",
    Warning RollingBack: "A rollout failed or was aborted: the stable is restored first.",
    Warning RolledBack: "The rollback ended; the configuration is remembered as failed.",
    Normal Releasing: "The rollout is undone to give the target back.",
    Normal RolloutRestarting: "What the rollout started on changed: the stable is restored first.",
    Normal RolloutRestarted: "The rollout starts again from its first step.",
    Normal UpToDate: "The target runs the configuration the spec asks for.",
    Normal Scaled: "The tier's replicas were applied to the target.",
    Warning BudgetExceeded: "The plan does not fit the Redis server's connection budget.",
    Normal WaitingForVerdict: "The rollout waits for a verdict it requires.",
    Warning VerdictUnreadable: "A verdict the rollout requires cannot be read.",
    Warning VerdictRefused: "A verdict the rollout requires is against its worker pool.",
    Normal VerdictSoaked: "A promoted configuration's verdict has soaked.",
    Warning VerdictFailed: "A promoted configuration failed the analyses after its promotion.",
    Warning VerdictWatchEnded: "A promoted configuration's analyses stopped before it soaked.",
    Warning EnvOverridden: "Another writer rewrote the pool env vars the operator promoted.",
    Warning Conflict: "Another policy holds the target, or another owner the canary's name.",
    Warning InvalidTarget: "The target is missing, cannot be managed, or the spec cannot be planned.",
    Normal Paused: "A person paused the rollout.",
    Normal Resumed: "A person resumed the rollout.",
    Normal Retry: "A person allowed a failed configuration to roll out again.",
    Normal ApprovalRequested: "The rollout waits at a gate for a person's or a webhook's approval.",
    Normal Approved: "A person or a webhook approved a gate.",
    Warning ApprovalRefused: "An approval webhook said no.",
    Warning NotificationFailed: "A notification could not be delivered to a destination (named, never its URL).",
    Normal FreezeHolds: "A freeze window holds the rollout: nothing starts, advances or promotes until it ends (a rollback still may).",
    Normal FreezeEnded: "No freeze window holds the rollout any longer.",
    Warning ManualActionIgnored: "A person's action does not apply now, or is not understood.",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_as_kubernetes_wants_them() {
        for n in Reason::ALL.iter().map(|r| r.as_str()) {
            // An Event's reason is UpperCamelCase letters and digits, and short.
            assert!(n.chars().next().is_some_and(|c| c.is_ascii_uppercase()) && n.len() < 128, "{n}");
            assert!(n.chars().all(|c| c.is_ascii_alphanumeric()), "{n}");
        }
    }
}
