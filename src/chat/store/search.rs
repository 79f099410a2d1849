//! Search queries: messages through their full-text vector (`messages.search`, see
//! tenants/migrations/0023_message_search.sql), visitors by name, contact details, tag and
//! notes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

/// What was asked, split into terms: CJK terms match as phrases of their characters, other
/// terms as word prefixes.
pub struct Terms {
    /// (term, is CJK)
    terms: Vec<(String, bool)>,
    /// The whole query, for the substring matches over visitors.
    pub text: String,
}

impl Terms {
    /// At most 8 terms of at most 64 characters; `None` when nothing searchable is left.
    pub fn parse(q: &str) -> Option<Self> {
        let text: String = q.chars().filter(|c| !c.is_control()).take(200).collect();
        let terms: Vec<(String, bool)> = text
            .split_whitespace()
            .filter_map(|raw| {
                let word: String = raw.chars().filter(|c| c.is_alphanumeric()).take(64).collect();
                let cjk = word.chars().any(is_cjk);
                (!word.is_empty()).then(|| (word.to_lowercase(), cjk))
            })
            .take(8)
            .collect();
        (!terms.is_empty()).then(|| Self { terms, text: text.trim().to_owned() })
    }

    /// The words a client highlights in what is found.
    pub fn words(&self) -> Vec<String> {
        self.terms.iter().map(|(t, _)| t.clone()).collect()
    }

    /// The tsquery expression over `$1…$n` (bound by [`Self::bound`]): all terms.
    fn tsquery(&self) -> String {
        let all = (1..=self.terms.len())
            .map(|i| match self.terms[i - 1].1 {
                true => format!("phraseto_tsquery('simple', public.kefu_search_text(${i}))"),
                false => format!("to_tsquery('simple', ${i})"),
            })
            .collect::<Vec<_>>()
            .join(" && ");
        format!("({all})")
    }

    /// Each term as its placeholder wants it: CJK text as is, a word as a prefix query
    /// (only letters and digits are left in it, so it is always a valid lexeme).
    fn bound(&self) -> impl Iterator<Item = String> + '_ {
        self.terms.iter().map(|(t, cjk)| if *cjk { t.clone() } else { format!("{t}:*") })
    }
}

/// Whether `c` is written without spaces between words (Chinese, Japanese, Korean).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF | 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// A message that matched, with its conversation and visitor.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MessageHit {
    pub message_id: i64,
    pub conversation_id: i64,
    /// `visitor`, `agent`, `bot`.
    pub sender_kind: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub visitor_id: String,
    pub visitor_name: String,
    pub status: crate::realtime::protocol::ConversationStatus,
}

/// Messages matching `terms`: among the 200 newest matches, the best first (then newest).
///
/// Two steps keep every query fast whatever the planner guesses about a phrase or a prefix
/// (docs/benchmarks.md, Search): the newest 5,000 messages are read first, which is enough
/// for common words; when they hold fewer than `limit` matches, the GIN index finds them in
/// the whole history (forced: scanning backwards by id for a rare word reads everything).
#[tracing::instrument(name = "db.search.messages", skip_all)]
pub async fn messages(
    conn: &mut PgConnection,
    terms: &Terms,
    limit: i64,
) -> sqlx::Result<Vec<MessageHit>> {
    let recent = hits(conn, terms, limit, Some(RECENT_WINDOW)).await?;
    if recent.len() as i64 >= limit {
        return Ok(recent);
    }
    let plan = |on: &'static str| {
        sqlx::query(
            "select set_config('enable_indexscan', $1, true), set_config('enable_seqscan', $1, true)",
        )
        .bind(on)
    };
    plan("off").execute(&mut *conn).await?;
    let all = hits(conn, terms, limit, None).await?;
    plan("on").execute(&mut *conn).await?;
    Ok(all)
}

/// How many of the newest messages the first step reads.
const RECENT_WINDOW: i64 = 5_000;

async fn hits(
    conn: &mut PgConnection,
    terms: &Terms,
    limit: i64,
    window: Option<i64>,
) -> sqlx::Result<Vec<MessageHit>> {
    let q = terms.tsquery();
    let source = match window {
        Some(n) => format!("(select * from messages order by id desc limit {n})"),
        None => "messages".to_owned(),
    };
    let limit_at = terms.terms.len() + 1;
    let sql = format!(
        "with hits as (
            select m.id, m.conversation_id, m.sender_kind, m.body, m.created_at,
                   ts_rank(m.search, {q}) as rank
              from {source} m
             where m.search @@ ({q}) and m.kind in ('text', 'image', 'file', 'product', 'card')
             order by m.id desc limit 200)
         select h.id as message_id, h.conversation_id, h.sender_kind, h.body, h.created_at,
                v.public_id as visitor_id, v.name as visitor_name, c.status
           from hits h
           join conversations c on c.id = h.conversation_id
           join visitors v on v.id = c.visitor_id
          order by h.rank desc, h.id desc
          limit ${limit_at}"
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for term in terms.bound() {
        query = query.bind(term);
    }
    query.bind(limit).fetch_all(conn).await
}

/// A visitor who matched, with their latest conversation.
#[derive(Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct VisitorHit {
    pub id: String,
    pub name: String,
    pub real_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// What matched: `name`, `email`, `phone`, `tag` or `note`.
    pub matched: String,
    pub conversation_id: Option<i64>,
    pub last_seen_at: DateTime<Utc>,
}

/// Visitors whose name, real name, email or phone contains the query, who carry a tag of
/// that name, or about whom a note says it; recently seen first.
#[tracing::instrument(name = "db.search.visitors", skip_all)]
pub async fn visitors(
    conn: &mut PgConnection,
    terms: &Terms,
    limit: i64,
) -> sqlx::Result<Vec<VisitorHit>> {
    sqlx::query_as(
        "select v.public_id as id, v.name, v.real_name, v.email, v.phone,
                case when v.name ilike $1 or v.real_name ilike $1 then 'name'
                     when v.email ilike $1 then 'email'
                     when v.phone ilike $1 then 'phone'
                     when exists (select 1 from visitor_tags vt join tags t on t.id = vt.tag_id
                                   where vt.visitor_id = v.id and lower(t.name) = lower($2)) then 'tag'
                     else 'note' end as matched,
                (select max(c.id) from conversations c where c.visitor_id = v.id) as conversation_id,
                v.last_seen_at
           from visitors v
          where v.name ilike $1 or v.real_name ilike $1 or v.email ilike $1 or v.phone ilike $1
             or exists (select 1 from visitor_tags vt join tags t on t.id = vt.tag_id
                         where vt.visitor_id = v.id and lower(t.name) = lower($2))
             or exists (select 1 from notes n where n.visitor_id = v.id and n.body ilike $1)
          order by v.last_seen_at desc
          limit $3",
    )
    .bind(crate::http::input::like_pattern(&terms.text))
    .bind(&terms.text)
    .bind(limit)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_phrases_for_cjk_and_prefixes_for_words() {
        let t = Terms::parse("  白色 Ship'ping  ").unwrap();
        assert_eq!(t.words(), ["白色", "shipping"]);
        assert_eq!(t.bound().collect::<Vec<_>>(), ["白色", "shipping:*"]);
        assert_eq!(
            t.tsquery(),
            "(phraseto_tsquery('simple', public.kefu_search_text($1)) && to_tsquery('simple', $2))"
        );
        assert!(Terms::parse(" '&|!:* ").is_none(), "nothing searchable");
        assert!(Terms::parse("").is_none());
        assert_eq!(Terms::parse(&"词 ".repeat(20)).unwrap().words().len(), 8);
    }
}
