//! The pre-chat form: fields a merchant asks visitors to fill in before their first message
//! (name, email, phone, and its own text or select fields, each required or optional, with
//! labels in English and Chinese). Admins configure it in the settings document
//! (`prechat_form`); the session tells the chat page when to show it (not to a verified
//! visitor, nor to one who answered it or has chatted before); the answers land on the
//! visitor's record and in the agents' visitor panel.
//!
//! Flooding: an address may have a few forms taken freely; after `prechat_free_per_ip`
//! accepted in ten minutes each needs a solved proof-of-work challenge ([`DIFFICULTY`]
//! leading zero bits of SHA-256, about a second of a phone's time), and past
//! `prechat_per_ip` attempts (or `prechat_per_visitor` an hour for one visitor) the form is
//! refused with 429 (`visitor_limits`, counted across nodes: http::rate). Mistyped forms
//! count towards the limits, not towards the proof.

use std::{borrow::Cow, collections::BTreeMap};

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::PgConnection;
use tenants::TenantTx;

use super::VisitorSession;
use super::Visitors;
use crate::{
    auth::{token::TokenKind, validate::Email},
    http::{
        AppError, ClientMeta, Routes, Scope,
        extract::ApiJson,
        rate::{Hit, Rule, Who},
    },
    i18n::Lang,
    realtime::{hub::encode, protocol::ServerFrame},
};

pub fn routes<S>() -> Routes<S>
where
    S: Clone + Send + Sync + 'static,
    Visitors: axum::extract::FromRef<S>,
    std::sync::Arc<crate::auth::ctx::Door>: axum::extract::FromRef<S>,
    crate::http::TrustedProxies: axum::extract::FromRef<S>,
{
    Routes::new().post("/api/v1/visitor/prechat", Scope::Public, submit).post(
        "/api/v1/visitor/prechat/challenge",
        Scope::Public,
        challenge,
    )
}

/// The settings key of the form.
pub const SETTINGS_KEY: &str = "prechat_form";
/// Most fields in a form, and options in a select.
const MAX_FIELDS: usize = 10;
const MAX_OPTIONS: usize = 20;
const MAX_LABEL: usize = 80;
/// Longest answer to a text field.
const MAX_ANSWER: usize = 500;
/// Leading zero bits the proof's SHA-256 needs.
pub const DIFFICULTY: u32 = 16;

/// A field's label (or a select option) in both languages; one may be empty (the other
/// stands in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    #[serde(default)]
    pub en: String,
    #[serde(default, rename = "zh-CN")]
    pub zh_cn: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The visitor's name (also their name on the record).
    Name,
    Email,
    Phone,
    Text,
    Select,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// `name`, `email` and `phone` for those kinds; `[a-z][a-z0-9_]*` (up to 32) for the
    /// merchant's own.
    #[serde(default)]
    pub key: String,
    pub kind: Kind,
    pub label: Label,
    #[serde(default)]
    pub required: bool,
    /// A select's choices (2 to 20); the answer is the choice's English label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Label>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrechatForm {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub fields: Vec<Field>,
}

fn label(raw: &Label, what: &str) -> Result<Label, String> {
    let (en, zh) = (raw.en.trim(), raw.zh_cn.trim());
    if en.is_empty() && zh.is_empty() {
        return Err(format!("{what} needs a label"));
    }
    for l in [en, zh] {
        if l.chars().count() > MAX_LABEL || l.chars().any(char::is_control) {
            return Err(format!("{what}: labels are one line of at most {MAX_LABEL} characters"));
        }
    }
    let other = |a: &str, b: &str| if a.is_empty() { b.to_owned() } else { a.to_owned() };
    Ok(Label { en: other(en, zh), zh_cn: other(zh, en) })
}

impl PrechatForm {
    /// The form as an admin sent it, checked and tidied (trimmed labels, each language
    /// filled from the other, built-in keys named after their kind).
    pub fn checked(&self) -> Result<Self, AppError> {
        let bad = |m: String| AppError::field("prechat_form", m);
        if self.fields.len() > MAX_FIELDS {
            return Err(bad(format!("at most {MAX_FIELDS} fields")));
        }
        if self.enabled && self.fields.is_empty() {
            return Err(bad("a form that is on needs at least one field".into()));
        }
        let mut fields: Vec<Field> = Vec::with_capacity(self.fields.len());
        for (n, f) in self.fields.iter().enumerate() {
            let what = format!("field {}", n + 1);
            let key = match f.kind {
                Kind::Name => "name".to_owned(),
                Kind::Email => "email".to_owned(),
                Kind::Phone => "phone".to_owned(),
                Kind::Text | Kind::Select => {
                    let key = f.key.trim().to_owned();
                    let ok = key.len() <= 32
                        && key.starts_with(|c: char| c.is_ascii_lowercase())
                        && key
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        && !matches!(key.as_str(), "name" | "email" | "phone");
                    if !ok {
                        return Err(bad(format!(
                            "{what}: a key of lower-case letters, digits and _ (up to 32, not name, email or phone)"
                        )));
                    }
                    key
                }
            };
            if fields.iter().any(|other| other.key == key) {
                return Err(bad(format!("{what}: the key {key} is used twice")));
            }
            let options = match f.kind {
                Kind::Select => {
                    if !(2..=MAX_OPTIONS).contains(&f.options.len()) {
                        return Err(bad(format!(
                            "{what}: a select has 2 to {MAX_OPTIONS} choices"
                        )));
                    }
                    let mut options: Vec<Label> = Vec::with_capacity(f.options.len());
                    for o in &f.options {
                        let o = label(o, &format!("{what}, a choice")).map_err(bad)?;
                        if options.iter().any(|p| p.en == o.en) {
                            return Err(bad(format!("{what}: the choice {} is there twice", o.en)));
                        }
                        options.push(o);
                    }
                    options
                }
                _ if !f.options.is_empty() => {
                    return Err(bad(format!("{what}: only a select has choices")));
                }
                _ => Vec::new(),
            };
            fields.push(Field {
                key,
                kind: f.kind,
                label: label(&f.label, &what).map_err(bad)?,
                required: f.required,
                options,
            });
        }
        Ok(Self { enabled: self.enabled, fields })
    }

    /// The merchant's form (off when none is stored or it no longer passes the checks).
    pub async fn load(conn: &mut PgConnection) -> sqlx::Result<Self> {
        let stored = crate::merchant::settings::store::get(conn, SETTINGS_KEY).await?;
        Ok(Self::from_stored(stored.as_ref()))
    }

    pub fn from_stored(stored: Option<&Value>) -> Self {
        stored
            .and_then(|v| serde_json::from_value::<Self>(v.clone()).ok())
            .and_then(|f| f.checked().ok())
            .unwrap_or_default()
    }
}

/// The form for this visitor's chat page, if they should fill it in now: it is on, the
/// visitor is not one the merchant's site vouched for, has not answered it and has not
/// chatted before.
pub async fn for_visitor(
    conn: &mut PgConnection,
    visitor_id: i64,
    verified: bool,
) -> sqlx::Result<Option<PrechatForm>> {
    if verified {
        return Ok(None);
    }
    let form = PrechatForm::load(&mut *conn).await?;
    if !form.enabled {
        return Ok(None);
    }
    Ok(super::store::is_new_to_chat(conn, visitor_id).await?.then_some(form))
}

/// Leading zero bits of SHA-256(`challenge` + ":" + `nonce`).
pub fn work(challenge: &str, nonce: &str) -> u32 {
    let digest =
        Sha256::new().chain_update(challenge).chain_update(":").chain_update(nonce).finalize();
    let mut bits = 0;
    for byte in digest {
        if byte == 0 {
            bits += 8;
        } else {
            bits += byte.leading_zeros();
            break;
        }
    }
    bits
}

#[derive(Serialize)]
struct ChallengeOut {
    challenge: String,
    difficulty: u32,
    expires_at: chrono::DateTime<chrono::Utc>,
}

/// `POST /api/v1/visitor/prechat/challenge` with the visitor token → a challenge: find a
/// `nonce` such that SHA-256(challenge + ":" + nonce) starts with `difficulty` zero bits.
async fn challenge(
    State(state): State<Visitors>,
    session: VisitorSession,
) -> Result<Json<ChallengeOut>, AppError> {
    let issued = state
        .door
        .tokens
        .issue_challenge(session.visitor.id, &session.tenant)
        .map_err(AppError::Internal)?;
    Ok(Json(ChallengeOut {
        challenge: issued.token,
        difficulty: DIFFICULTY,
        expires_at: issued.expires_at,
    }))
}

#[derive(Deserialize)]
struct Proof {
    challenge: String,
    nonce: String,
}

#[derive(Deserialize)]
struct Submit {
    answers: Map<String, Value>,
    #[serde(default)]
    proof: Option<Proof>,
    /// The language of the field messages (`en`, `zh-CN`; default English).
    #[serde(default)]
    lang: Option<String>,
}

/// An answer as stored on the visitor (and shown to agents).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer {
    pub key: String,
    pub kind: Kind,
    pub label: Label,
    /// The text given; for a select, the choice's English label.
    pub value: String,
    /// A select's choice in both languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<Label>,
}

/// `POST /api/v1/visitor/prechat {answers: {key: text}, proof?: {challenge, nonce}}` with
/// the visitor token → 200 `{answers}`. 422 names each field that is wrong; 428
/// `proof_required` when this address must solve a challenge first; 429 past the limits.
async fn submit(
    State(state): State<Visitors>,
    session: VisitorSession,
    meta: ClientMeta,
    ApiJson(req): ApiJson<Submit>,
) -> Result<Response, AppError> {
    let (tenant, visitor) = (session.tenant.id, session.visitor.id);
    let accepted = metered(&state, &session, &meta, req.proof.as_ref()).await?;
    let mut tx = TenantTx::begin(&state.door.db, tenant).await?;
    let form = PrechatForm::load(&mut tx).await?;
    if !form.enabled {
        return Err(AppError::conflict(
            "prechat_off",
            None,
            "this merchant asks nothing before a chat",
        ));
    }
    let lang = req.lang.as_deref().and_then(Lang::parse).unwrap_or_default();
    let answers = validate(&form, &req.answers, lang)?;
    super::store::save_prechat(&mut tx, visitor, record(&answers)).await?;
    let out = super::manage::visitor_out(&mut tx, visitor).await?;
    tx.commit().await?;
    state.limiter.add(tenant, Hit::ip(accepted, meta.ip)).await?;
    state
        .chat
        .hub
        .to_agents(tenant, &encode(&ServerFrame::Visitor { event: "prechat", visitor: out }));
    Ok(Json(json!({ "answers": answers })).into_response())
}

/// Counts a form against the visitor's and the address's limits; past a few forms from one
/// address, each needs a proof of work. Returns the rule an accepted form counts against.
async fn metered(
    state: &Visitors,
    session: &VisitorSession,
    meta: &ClientMeta,
    proof: Option<&Proof>,
) -> Result<Rule, AppError> {
    let (tenant, visitor) = (session.tenant.id, session.visitor.id);
    let limits = &state.limiter.limits;
    let hits = [
        Hit::ip(Rule::per_ten_minutes("prechat", limits.prechat_per_ip), meta.ip),
        Hit::visitor(Rule::per_hour("prechat", limits.prechat_per_visitor), visitor),
    ];
    state.limiter.check(tenant, &hits).await?;
    let accepted = accepted_rule(limits);
    if accepted.limit > 0
        && state.limiter.current(tenant, accepted, Who::Ip(meta.ip)).await? >= accepted.limit
    {
        check_proof(state, session, proof).await?;
    }
    Ok(accepted)
}

/// What the answers say about the visitor: their name, email and phone, if asked.
fn record(answers: &[Answer]) -> super::store::PrechatAnswers {
    let given = |kind: Kind| answers.iter().find(|a| a.kind == kind).map(|a| a.value.clone());
    super::store::PrechatAnswers {
        answers: json!(answers),
        name: given(Kind::Name).and_then(|n| crate::http::input::shown_name(&n, 60)),
        email: given(Kind::Email),
        phone: given(Kind::Phone),
    }
}

/// Forms taken from one address in ten minutes before each needs a proof of work.
fn accepted_rule(limits: &crate::http::rate::VisitorLimits) -> Rule {
    Rule::per_ten_minutes("prechat_taken", limits.prechat_free_per_ip)
}

async fn check_proof(
    state: &Visitors,
    session: &VisitorSession,
    proof: Option<&Proof>,
) -> Result<(), AppError> {
    let required = || {
        AppError::bad_request_status(
            StatusCode::PRECONDITION_REQUIRED,
            "proof_required",
            "many forms came from this address: solve a challenge (POST /api/v1/visitor/prechat/challenge) and send its proof",
        )
    };
    let proof = proof.ok_or_else(required)?;
    let claims =
        state.door.tokens.verify(&proof.challenge, TokenKind::Challenge).map_err(|_| required())?;
    let mine =
        claims.tid == Some(session.tenant.id.0) && claims.sub == session.visitor.id.to_string();
    if !mine || proof.nonce.len() > 64 || work(&proof.challenge, &proof.nonce) < DIFFICULTY {
        return Err(required());
    }
    // Each challenge is good once, on whichever node it is answered.
    let expires = chrono::DateTime::from_timestamp(claims.exp as i64, 0).unwrap_or_default();
    if !state.chat.consume_ticket(&claims.jti, expires).await? {
        return Err(required());
    }
    Ok(())
}

/// Checks every answer against the form; all problems at once, by field key, in `lang`
/// (they are shown to the visitor under each field).
fn validate(
    form: &PrechatForm,
    answers: &Map<String, Value>,
    lang: Lang,
) -> Result<Vec<Answer>, AppError> {
    let say = |key: &'static str| Cow::Borrowed(lang.tr(key));
    let mut problems: BTreeMap<Cow<'static, str>, Cow<'static, str>> = BTreeMap::new();
    for key in answers.keys() {
        if !form.fields.iter().any(|f| &f.key == key) {
            problems
                .insert("answers".into(), "an answer to a field this form does not have".into());
        }
    }
    let mut out = Vec::new();
    for f in &form.fields {
        let raw = match answers.get(&f.key) {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                problems.insert(f.key.clone().into(), say("chat.prechat_err_invalid"));
                continue;
            }
        };
        let value = raw.trim();
        if value.is_empty() {
            if f.required {
                problems.insert(f.key.clone().into(), say("chat.prechat_err_required"));
            }
            continue;
        }
        let problem = match f.kind {
            _ if value.chars().count() > MAX_ANSWER => Some("chat.prechat_err_long"),
            _ if value.chars().any(char::is_control) => Some("chat.prechat_err_invalid"),
            Kind::Name if value.chars().count() > 80 => Some("chat.prechat_err_long"),
            Kind::Email if value.len() > 254 || Email::parse(value).is_err() => {
                Some("chat.prechat_err_email")
            }
            Kind::Phone if !crate::http::input::phone_number(value) => {
                Some("chat.prechat_err_phone")
            }
            Kind::Select if !f.options.iter().any(|o| o.en == value) => {
                Some("chat.prechat_err_choice")
            }
            _ => None,
        };
        if let Some(p) = problem {
            problems.insert(f.key.clone().into(), say(p));
            continue;
        }
        let choice = f.options.iter().find(|o| o.en == value).cloned();
        out.push(Answer {
            key: f.key.clone(),
            kind: f.kind,
            label: f.label.clone(),
            value: value.to_owned(),
            choice,
        });
    }
    if problems.is_empty() { Ok(out) } else { Err(AppError::Validation(problems)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> PrechatForm {
        serde_json::from_value(json!({
            "enabled": true,
            "fields": [
                { "kind": "name", "label": { "en": "Your name" }, "required": true },
                { "kind": "email", "label": { "en": "Email", "zh-CN": "邮箱" } },
                { "kind": "select", "key": "topic", "label": { "zh-CN": "咨询类型" }, "required": true,
                  "options": [{ "en": "Pre-sales", "zh-CN": "售前" }, { "en": "After-sales" }] }
            ]
        }))
        .unwrap()
    }

    #[test]
    fn a_form_is_tidied() {
        let f = form().checked().unwrap();
        assert_eq!(f.fields[0].key, "name");
        assert_eq!(f.fields[0].label.zh_cn, "Your name", "one language stands in for the other");
        assert_eq!(f.fields[2].label.en, "咨询类型");
        assert_eq!(f.fields[2].options[1].zh_cn, "After-sales");
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [
            json!({ "enabled": true, "fields": [] }),
            json!({ "fields": [{ "kind": "text", "key": "Bad Key", "label": { "en": "x" } }] }),
            json!({ "fields": [{ "kind": "text", "key": "email", "label": { "en": "x" } }] }),
            json!({ "fields": [{ "kind": "name", "label": { "en": "a" } }, { "kind": "name", "label": { "en": "b" } }] }),
            json!({ "fields": [{ "kind": "select", "key": "t", "label": { "en": "x" }, "options": [{ "en": "one" }] }] }),
            json!({ "fields": [{ "kind": "text", "key": "t", "label": { "en": "x" }, "options": [{ "en": "a" }, { "en": "b" }] }] }),
            json!({ "fields": [{ "kind": "text", "key": "t", "label": {} }] }),
            json!({ "fields": [{ "kind": "text", "key": "t", "label": { "en": "x".repeat(81) } }] }),
        ] {
            let f: PrechatForm = serde_json::from_value(bad.clone()).unwrap();
            assert!(f.checked().is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_are_checked_field_by_field() {
        let f = form().checked().unwrap();
        let answers = |v: Value| v.as_object().unwrap().clone();
        let Err(AppError::Validation(problems)) =
            validate(&f, &answers(json!({ "email": "nope", "topic": "Other" })), Lang::ZhCn)
        else {
            panic!("expected field errors");
        };
        let keys: Vec<&str> = problems.keys().map(|k| k.as_ref()).collect();
        assert_eq!(keys, ["email", "name", "topic"]);
        assert_eq!(problems["name"], "请填写此项。");
        let ok = validate(&f, &answers(json!({ "name": " Ann ", "topic": "Pre-sales" })), Lang::En)
            .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].value, "Ann");
        assert_eq!(ok[1].choice.as_ref().unwrap().zh_cn, "售前");
    }

    #[test]
    fn work_counts_leading_zero_bits() {
        let nonce = (0..).map(|n: u64| n.to_string()).find(|n| work("c", n) >= 8).unwrap();
        assert!(work("c", &nonce) >= 8);
        assert!(work("c", "definitely-not") < 64);
    }
}
