//! Typed identifiers. All are UUIDs on the wire (the LangSmith SDK generates
//! UUIDv7 run ids), but a `RunId` can never be passed where a `SessionId` is
//! expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            /// A new time-ordered (v7) id.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A run (one traced call). A trace's id is its root run's id.
    RunId
);
id_type!(
    /// A project (LangSmith calls it a tracing session).
    SessionId
);
id_type!(
    /// A piece of feedback.
    FeedbackId
);
id_type!(
    /// An automation rule.
    RuleId
);
id_type!(
    /// An alert rule.
    AlertId
);
id_type!(
    /// A webhook delivery (its `webhook-id`, stable across retries).
    DeliveryId
);
id_type!(
    /// One of a rule's webhooks: stable while the rule lives, so a delivery
    /// redelivered after the webhook's URL changed goes to its new URL.
    WebhookId
);
id_type!(
    /// This runhook instance, reported as `tenant_id` (generated at first start).
    TenantId
);
id_type!(
    /// A dataset of examples.
    DatasetId
);
id_type!(
    /// An example of a dataset.
    ExampleId
);
id_type!(
    /// An annotation queue.
    QueueId
);
