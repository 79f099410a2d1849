//! The WebSocket protocol (version 1), documented in `docs/protocol.md`: JSON text frames
//! tagged by `type`. Parsing never fails the connection: anything malformed becomes an
//! `error` frame for the sender and the socket lives on.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest frame accepted (the socket is configured with the same limit).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest text message, in characters.
pub const MAX_TEXT_CHARS: usize = 5_000;
const MAX_CLIENT_MSG_ID: usize = 64;
const MAX_PREVIEW_CHARS: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    Image,
    File,
    Product,
    /// A rich card (title, text, image, fields, link buttons) posted through the API.
    Card,
    Notice,
    /// An agent's private note in a conversation: the team sees it, the visitor never does.
    Note,
}

/// Whether messages of `kind` are for agents only (status lines, private notes): never
/// pushed or replayed to the visitor, never in webhooks.
pub fn team_only(kind: &str) -> bool {
    matches!(kind, "activity" | "note")
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Image => "image",
            Self::File => "file",
            Self::Product => "product",
            Self::Card => "card",
            Self::Notice => "notice",
            Self::Note => "note",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Away,
    Offline,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Away => "away",
            Self::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "online" => Self::Online,
            "away" => Self::Away,
            _ => Self::Offline,
        }
    }
}

/// A file or image uploaded first (`POST /api/v1/uploads`), named by its id. The server
/// fills in name, size, type and URLs from its own record; anything else a client puts here
/// is ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AttachmentRef {
    pub id: String,
}

/// A product card (GOFLY's `visitorProduct`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    pub title: String,
    #[serde(default)]
    pub price: String,
    #[serde(default)]
    pub img: String,
    #[serde(default)]
    pub url: String,
}

/// A rich card: what a merchant's system shows a visitor about an order, a booking, a
/// ticket. Everything is plain text; links are http(s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Card {
    /// Up to 200 characters.
    pub title: String,
    /// Up to 2,000 characters; newlines kept.
    #[serde(default)]
    pub text: String,
    /// An http(s) image shown at the top.
    #[serde(default)]
    pub image: String,
    /// Up to 10 label/value rows (label ≤ 60, value ≤ 200 characters).
    #[serde(default)]
    pub fields: Vec<CardField>,
    /// Up to 3 link buttons (label ≤ 40 characters, http(s) URL).
    #[serde(default)]
    pub buttons: Vec<CardButton>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardField {
    pub label: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardButton {
    pub label: String,
    pub url: String,
}

pub const MAX_CARD_FIELDS: usize = 10;
pub const MAX_CARD_BUTTONS: usize = 3;

/// The card as stored, or why not.
fn validate_card(card: Card) -> Result<(Value, String), FrameError> {
    let bad = |m: &str| FrameError::new("bad_card", m);
    let short = |s: &str, max: usize| clean_line(s).chars().take(max).collect::<String>();
    let title = short(&card.title, 200);
    if title.trim().is_empty() {
        return Err(bad("a card needs a title"));
    }
    let text = clean_text(&card.text);
    if text.chars().count() > 2000 {
        return Err(bad("a card's text is limited to 2000 characters"));
    }
    if !card.image.is_empty() && !safe_link(&card.image) {
        return Err(bad("a card's image must be an http(s) URL"));
    }
    if card.fields.len() > MAX_CARD_FIELDS {
        return Err(bad("a card has at most 10 fields"));
    }
    if card.buttons.len() > MAX_CARD_BUTTONS {
        return Err(bad("a card has at most 3 buttons"));
    }
    let mut fields = Vec::new();
    for f in &card.fields {
        let (label, value) = (short(&f.label, 60), short(&f.value, 200));
        if label.trim().is_empty() {
            return Err(bad("every card field needs a label"));
        }
        fields.push(serde_json::json!({ "label": label, "value": value }));
    }
    let mut buttons = Vec::new();
    for b in &card.buttons {
        let label = short(&b.label, 40);
        if label.trim().is_empty() || !safe_link(&b.url) {
            return Err(bad("every card button needs a label and an http(s) URL"));
        }
        buttons.push(serde_json::json!({ "label": label, "url": b.url }));
    }
    let payload = serde_json::json!({ "card": {
        "title": title, "text": text, "image": card.image, "fields": fields, "buttons": buttons,
    } });
    Ok((payload, title))
}

/// A validated `send` frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Send {
    pub client_msg_id: String,
    pub conversation_id: Option<i64>,
    pub kind: MessageKind,
    pub body: String,
    pub payload: Option<Value>,
    /// The upload an image or file message carries; resolved into `payload` by the socket
    /// (which can look it up) before the message is stored.
    pub attachment: Option<String>,
}

/// What a client may send.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientFrame {
    Send(Send),
    Typing {
        conversation_id: Option<i64>,
        preview: Option<String>,
    },
    Read {
        conversation_id: Option<i64>,
        up_to: i64,
    },
    Status(AgentStatus),
    /// Agents: someone is at this tab (keyboard or mouse), which ends an automatic away.
    Active,
    Ping,
}

/// Why a frame was refused: a stable code, a readable message, and the `client_msg_id`
/// when the frame had one (so the client knows which send failed).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    pub client_msg_id: Option<String>,
    /// Seconds before trying again (`rate_limited`).
    pub retry_after: Option<u64>,
}

impl FrameError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), client_msg_id: None, retry_after: None }
    }
}

#[derive(Deserialize)]
struct RawSend {
    client_msg_id: String,
    #[serde(default)]
    conversation_id: Option<i64>,
    #[serde(default = "text_kind")]
    kind: MessageKind,
    #[serde(default)]
    body: String,
    #[serde(default)]
    attachment: Option<AttachmentRef>,
    #[serde(default)]
    product: Option<Product>,
    #[serde(default)]
    card: Option<Card>,
}

fn text_kind() -> MessageKind {
    MessageKind::Text
}

#[derive(Deserialize)]
struct RawTyping {
    #[serde(default)]
    conversation_id: Option<i64>,
    #[serde(default)]
    preview: Option<String>,
}

#[derive(Deserialize)]
struct RawRead {
    #[serde(default)]
    conversation_id: Option<i64>,
    up_to: i64,
}

#[derive(Deserialize)]
struct RawStatus {
    status: AgentStatus,
}

/// Parses and validates one text frame.
pub fn parse(text: &str) -> Result<ClientFrame, FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::new(
            "frame_too_large",
            format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
        ));
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|_| FrameError::new("bad_json", "the frame is not valid JSON"))?;
    let Some(kind) = value.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return Err(FrameError::new(
            "bad_frame",
            "a frame is a JSON object with a string \"type\"",
        ));
    };
    let shape =
        |e: serde_json::Error| FrameError::new("bad_frame", format!("malformed {kind} frame: {e}"));
    match kind.as_str() {
        "send" => {
            let raw: RawSend = serde_json::from_value(value.clone()).map_err(|e| {
                let mut err = shape(e);
                err.client_msg_id =
                    value.get("client_msg_id").and_then(Value::as_str).map(str::to_owned);
                err
            })?;
            let id = raw.client_msg_id.clone();
            validate_send(raw).map(ClientFrame::Send).map_err(|mut e| {
                e.client_msg_id = Some(id).filter(|id| valid_client_msg_id(id));
                e
            })
        }
        "typing" => {
            let raw: RawTyping = serde_json::from_value(value).map_err(shape)?;
            let preview = raw
                .preview
                .map(|p| p.chars().filter(|c| !c.is_control()).take(MAX_PREVIEW_CHARS).collect());
            Ok(ClientFrame::Typing { conversation_id: raw.conversation_id, preview })
        }
        "read" => {
            let raw: RawRead = serde_json::from_value(value).map_err(shape)?;
            Ok(ClientFrame::Read { conversation_id: raw.conversation_id, up_to: raw.up_to.max(0) })
        }
        "status" => {
            let raw: RawStatus = serde_json::from_value(value).map_err(shape)?;
            Ok(ClientFrame::Status(raw.status))
        }
        "ping" => Ok(ClientFrame::Ping),
        "active" => Ok(ClientFrame::Active),
        other => Err(FrameError::new(
            "unknown_type",
            format!("unknown frame type {:?}", other.chars().take(40).collect::<String>()),
        )),
    }
}

fn valid_client_msg_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_MSG_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

fn validate_send(raw: RawSend) -> Result<Send, FrameError> {
    if !valid_client_msg_id(&raw.client_msg_id) {
        return Err(FrameError::new(
            "bad_client_msg_id",
            "client_msg_id must be 1–64 characters of letters, digits, '-', '_', '.', ':'",
        ));
    }
    let body = clean_text(&raw.body);
    let mut attachment = None;
    let (body, payload) = match raw.kind {
        MessageKind::Text | MessageKind::Note => {
            if body.trim().is_empty() {
                return Err(FrameError::new("empty_message", "a text message needs a body"));
            }
            if body.chars().count() > MAX_TEXT_CHARS {
                return Err(FrameError::new(
                    "message_too_long",
                    format!("text messages are limited to {MAX_TEXT_CHARS} characters"),
                ));
            }
            (body, None)
        }
        MessageKind::Image | MessageKind::File => {
            let a = raw.attachment.ok_or_else(|| {
                FrameError::new("bad_attachment", "image and file messages need an attachment")
            })?;
            if !valid_upload_id(&a.id) {
                return Err(FrameError::new(
                    "bad_attachment",
                    "an attachment is the id of a file uploaded to this server",
                ));
            }
            attachment = Some(a.id);
            (body.chars().take(MAX_TEXT_CHARS).collect(), None)
        }
        MessageKind::Product => {
            let p = raw.product.ok_or_else(|| {
                FrameError::new("bad_product", "a product message needs a product")
            })?;
            let title = clean_text(&p.title).chars().take(200).collect::<String>();
            if title.trim().is_empty() {
                return Err(FrameError::new("bad_product", "a product needs a title"));
            }
            for link in [&p.img, &p.url] {
                if !link.is_empty() && !safe_link(link) {
                    return Err(FrameError::new(
                        "bad_product",
                        "product links must be http(s) URLs",
                    ));
                }
            }
            let payload = serde_json::json!({ "product": {
                "title": title,
                "price": clean_text(&p.price).chars().take(50).collect::<String>(),
                "img": p.img,
                "url": p.url,
            } });
            (body.chars().take(MAX_TEXT_CHARS).collect(), Some(payload))
        }
        MessageKind::Card => {
            let card = raw
                .card
                .ok_or_else(|| FrameError::new("bad_card", "a card message needs a card"))?;
            let (payload, title) = validate_card(card)?;
            // The body is the card's summary where there is no room for the card (previews,
            // email): the caller's own, else the title.
            let body: String = body.chars().take(MAX_TEXT_CHARS).collect();
            (if body.trim().is_empty() { title } else { body }, Some(payload))
        }
        MessageKind::Notice => {
            return Err(FrameError::new("bad_kind", "clients cannot send notices"));
        }
    };
    Ok(Send {
        client_msg_id: raw.client_msg_id,
        conversation_id: raw.conversation_id,
        kind: raw.kind,
        body,
        payload,
        attachment,
    })
}

/// One line: every control character (newlines too) becomes a space.
fn clean_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Control characters other than newline and tab are dropped (NUL cannot even be stored).
fn clean_text(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect()
}

/// An absolute http(s) URL without characters that could break out of an attribute.
pub fn safe_link(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && !url.chars().any(|c| {
            c.is_control() || c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '\\')
        })
}

// ---------------------------------------------------------------------------------------
// Server → client

/// Who wrote a message.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Sender {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An agent's picture (a path on this server), when they have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// A stored message as clients see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: i64,
    pub conversation_id: i64,
    pub sender: Sender,
    pub kind: &'static str,
    pub body: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Where a conversation stands: `queued` (nobody has it yet), `open`, `pending` (the team
/// waits on the visitor), `snoozed`, or `closed` (shown as resolved). Stored as this text in
/// `conversations.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ConversationStatus {
    Queued,
    Open,
    Pending,
    Snoozed,
    Closed,
}

impl ConversationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Open => "open",
            Self::Pending => "pending",
            Self::Snoozed => "snoozed",
            Self::Closed => "closed",
        }
    }
}

impl std::fmt::Display for ConversationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationOut {
    pub id: i64,
    pub status: ConversationStatus,
    pub visitor_id: String,
    pub visitor_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    /// A snoozed conversation's wake-up time (absent: until the visitor writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snoozed_until: Option<DateTime<Utc>>,
    /// When the visitor wrote while nobody could answer (absent: they did not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_offline_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Everything the server sends.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Hello {
        v: u32,
        role: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        visitor_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent_id: Option<i64>,
        server_time: DateTime<Utc>,
    },
    Message(MessageOut),
    Ack {
        client_msg_id: String,
        id: i64,
        conversation_id: i64,
        duplicate: bool,
    },
    Typing {
        conversation_id: i64,
        from: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        agent_id: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        preview: Option<String>,
    },
    Read {
        conversation_id: i64,
        by: &'static str,
        up_to: i64,
    },
    Presence(Presence),
    Conversation {
        event: &'static str,
        conversation: ConversationOut,
    },
    Notice {
        code: &'static str,
        message: String,
    },
    /// For agents: a platform announcement was published (show it) or withdrawn (hide it).
    Announcement {
        event: &'static str,
        announcement: Announcement,
    },
    /// For agents: a visitor rated a closed conversation.
    Rating {
        rating: RatingOut,
    },
    /// For agents: a visitor's profile changed (names, tags, blocked).
    Visitor {
        event: &'static str,
        visitor: VisitorOut,
    },
    SyncDone {
        last_id: i64,
        more: bool,
    },
    /// Frames for this connection may have been lost between nodes: the connection closes
    /// (4008) and the client reconnects with `since` no greater than this id.
    Resync {
        since: i64,
    },
    Error {
        code: &'static str,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<String>,
        /// Seconds before trying again (`rate_limited`).
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    Pong,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum Presence {
    /// For visitors: whether someone can answer now (`online`: within business hours and an
    /// agent online), and whether an agent is online at all, whatever the hours say
    /// (`agents`: the chat page shows the team online while one is answering this visitor).
    Team { online: bool, agents: bool },
    /// For agents: a colleague's effective status.
    Agent { agent_id: i64, status: AgentStatus },
    /// For agents: a visitor came or went.
    Visitor { visitor_id: String, online: bool },
    /// For agents: a visitor opened a page of the merchant's site.
    Page { visitor_id: String, url: String, title: String, at: DateTime<Utc> },
}

/// What agents' lists and panels show of a visitor.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VisitorOut {
    #[sqlx(rename = "public_id")]
    pub id: String,
    pub name: String,
    pub real_name: Option<String>,
    /// The merchant's user id, for a verified visitor.
    #[sqlx(rename = "external_id")]
    pub user_id: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    #[sqlx(skip)]
    pub tags: Vec<String>,
    pub blocked: bool,
}

impl From<FrameError> for ServerFrame {
    fn from(e: FrameError) -> Self {
        ServerFrame::Error {
            code: e.code,
            message: e.message,
            client_msg_id: e.client_msg_id,
            retry_after: e.retry_after,
        }
    }
}

/// Whether `id` has the shape of an uploaded file's id (26 base32 characters): an
/// attachment names a file the server stored, never a path or URL.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 26 && id.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// A platform announcement as agents see it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Announcement {
    pub id: i64,
    pub title: String,
    /// Plain text; pages escape it.
    pub body: String,
    pub published_at: DateTime<Utc>,
}

/// A visitor's rating of a closed conversation.
#[derive(Clone, Debug, Serialize)]
pub struct RatingOut {
    pub conversation_id: i64,
    pub score: i16,
    pub comment: String,
    pub agent_id: Option<i64>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_frames() {
        let f =
            parse(r#"{"type":"send","client_msg_id":"c-1","kind":"text","body":"hi\u0000 there"}"#)
                .unwrap();
        let ClientFrame::Send(s) = f else { panic!() };
        assert_eq!(s.body, "hi there", "NUL removed");
        assert_eq!(parse(r#"{"type":"ping"}"#).unwrap(), ClientFrame::Ping);
        assert!(matches!(
            parse(r#"{"type":"read","up_to":-5}"#).unwrap(),
            ClientFrame::Read { up_to: 0, .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"status","status":"away"}"#).unwrap(),
            ClientFrame::Status(AgentStatus::Away)
        ));
        let p = parse(
            r#"{"type":"send","client_msg_id":"p","kind":"product","product":{"title":"Lamp","price":"9.90","img":"https://x.test/a.png","url":"https://x.test/p"}}"#,
        );
        assert!(p.is_ok());
    }

    #[test]
    fn junk_is_an_error_frame_never_a_panic() {
        let cases = [
            ("", "bad_json"),
            ("not json", "bad_json"),
            ("[]", "bad_frame"),
            ("42", "bad_frame"),
            (r#"{"type":7}"#, "bad_frame"),
            (r#"{"type":"explode"}"#, "unknown_type"),
            (r#"{"type":"send"}"#, "bad_frame"),
            (r#"{"type":"send","client_msg_id":"x","kind":"text","body":"   "}"#, "empty_message"),
            (r#"{"type":"send","client_msg_id":"x","kind":"weird","body":"a"}"#, "bad_frame"),
            (r#"{"type":"send","client_msg_id":"a b","body":"a"}"#, "bad_client_msg_id"),
            (r#"{"type":"send","client_msg_id":"x","kind":"notice","body":"a"}"#, "bad_kind"),
            (
                r#"{"type":"send","client_msg_id":"x","kind":"image","attachment":{"id":"javascript:alert(1)"}}"#,
                "bad_attachment",
            ),
            (
                r#"{"type":"send","client_msg_id":"x","kind":"product","product":{"title":"t","url":"javascript:alert(1)"}}"#,
                "bad_product",
            ),
            (
                r#"{"type":"send","client_msg_id":"x","conversation_id":"abc","body":"a"}"#,
                "bad_frame",
            ),
            (r#"{"type":"read","up_to":1e400}"#, "bad_json"),
        ];
        for (text, code) in cases {
            assert_eq!(parse(text).unwrap_err().code, code, "{text}");
        }
        let long = format!(
            r#"{{"type":"send","client_msg_id":"x","body":"{}"}}"#,
            "a".repeat(MAX_TEXT_CHARS + 1)
        );
        let err = parse(&long).unwrap_err();
        assert_eq!((err.code, err.client_msg_id.as_deref()), ("message_too_long", Some("x")));
        assert_eq!(parse(&"x".repeat(MAX_FRAME_BYTES + 1)).unwrap_err().code, "frame_too_large");
    }

    #[test]
    fn server_frames_serialize_with_their_type() {
        let f = ServerFrame::Ack {
            client_msg_id: "c".into(),
            id: 5,
            conversation_id: 2,
            duplicate: false,
        };
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"{"type":"ack","client_msg_id":"c","id":5,"conversation_id":2,"duplicate":false}"#
        );
        let p = ServerFrame::Presence(Presence::Team { online: true, agents: true });
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"type":"presence","of":"team","online":true,"agents":true}"#
        );
    }
}
