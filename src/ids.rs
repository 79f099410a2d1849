//! The ids of a merchant's objects and the platform's, one type each, so that a webhook's id
//! cannot be passed where a conversation's is meant. Each is an `i64` underneath: stored
//! as `bigint` and sent as a JSON number, exactly as before the types existed. Handlers get
//! them from the URL with [`crate::http::extract::PathId`].
//!
//! A leaf module: it imports nothing of the crate, so the realtime core may use it.

/// Declares an id type: a copyable `i64` newtype that is a `bigint` to sqlx, a number to
/// serde, and parses from a URL path segment.
macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, sqlx::Type, utoipa::ToSchema,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> Self {
                Self(id)
            }
        }
    )+};
}

ids! {
    /// A conversation of a merchant.
    ConversationId;
    /// An agent (a membership of a user in a merchant).
    AgentId;
    /// A note on a visitor.
    NoteId;
    /// An entry of the merchant's blacklist.
    BlockId;
    /// A quick reply (an agent's own or the team's).
    QuickReplyId;
    /// An automatic reply rule.
    AutoReplyId;
    /// A webhook endpoint.
    WebhookId;
    /// An API token.
    ApiTokenId;
    /// An agent's saved view of the Conversations page.
    SavedViewId;
    /// A platform announcement.
    AnnouncementId;
    /// A sign-in identity provider of the platform.
    IdentityProviderId;
}
