//! The one place where a person's sign-in changes: their password, their second factor, and
//! the invitation that lets a mailbox choose a password. (An email change will be one more
//! [`Change`] here.) Every change names who makes it — an [`Actor`] — and goes through
//! [`authorize`], which asks whether that actor may act on that person *everywhere the person
//! holds a role*:
//!
//! - the person themself may (the handler has checked their proof: current password, code);
//! - an emailed link may act on the person it was sent to;
//! - the operator at the command line may;
//! - a merchant's owner or admin may act only on an agent of that merchant whose role is not
//!   above theirs (the owner's sign-in is the owner's), who is **not a platform admin** and
//!   **not an agent of any other merchant**: a merchant must never gain a say over a login
//!   that the platform or another merchant relies on;
//! - a platform admin in a support session acts as nobody's self.
//!
//! Every change bumps the person's credential generation (half-finished sign-ins die) and
//! ends their sessions (but the one the person made it from); the caller closes the ended
//! sessions' sockets after commit
//! ([`sessions::Ended::close_sockets`]). `tests/it/static_checks.rs` keeps the SQL that writes
//! credentials in this module (and the `totp` helpers it calls).

use sqlx::PgConnection;

use super::{
    session::AgentSession,
    sessions::{self, Ended, Reason, SessionId, Which},
    totp,
};
use crate::http::{AppError, Role};

/// Who changes someone's sign-in.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The person, from one of their sessions (that session stays; the others end), or
    /// from a sign-in step (a second factor set up while signing in: no session yet).
    Themself { user_id: i64, session: Option<SessionId> },
    /// An owner or admin acting on one of their merchant's agents.
    Merchant(&'a AgentSession),
    /// Whoever opened a link emailed to the person's own address (invitation, reset).
    Mailbox { user_id: i64 },
    /// The operator at the command line (`kefu admin create`).
    Operator,
}

impl Actor<'_> {
    /// The session's own person — refused for a platform admin in a support session, who
    /// must not change the agent's sign-in.
    pub fn themself(session: &AgentSession) -> Result<Actor<'static>, AppError> {
        if session.impersonator.is_some() {
            return Err(AppError::forbidden(
                "support_session",
                "a support session cannot change the agent's sign-in",
            ));
        }
        Ok(Actor::Themself { user_id: session.user_id, session: session.session_id })
    }

    /// The actor's own session, which a change it makes leaves signed in.
    fn own_session(&self) -> Option<SessionId> {
        match self {
            Self::Themself { session, .. } => *session,
            _ => None,
        }
    }
}

/// Whether `actor` may change the sign-in of the person `target` (a user id). For a
/// merchant actor, `conn` must be scoped to the actor's merchant.
pub async fn authorize(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    target: i64,
) -> Result<(), AppError> {
    let session = match actor {
        Actor::Operator => return Ok(()),
        Actor::Themself { user_id, .. } | Actor::Mailbox { user_id } => {
            return if *user_id == target { Ok(()) } else { Err(AppError::NotFound) };
        }
        Actor::Merchant(session) => session,
    };
    session.require(Role::Admin)?;
    let role: Option<Role> = sqlx::query_scalar("select role from agents where user_id = $1")
        .bind(target)
        .fetch_optional(&mut *conn)
        .await?;
    let role = role.ok_or(AppError::NotFound)?;
    if role > session.agent.role {
        return Err(AppError::forbidden(
            "owner_protected",
            "only the owner changes how the owner signs in",
        ));
    }
    let (platform_admin, elsewhere): (bool, bool) = sqlx::query_as(
        "select exists (select 1 from public.platform_admins where user_id = $1),
                exists (select 1 from public.tenant_members m join public.tenants t on t.id = m.tenant_id
                        where m.user_id = $1 and m.tenant_id <> $2 and t.status <> 'deleted')",
    )
    .bind(target)
    .bind(session.tenant.id.0)
    .fetch_one(&mut *conn)
    .await?;
    if platform_admin {
        return Err(AppError::conflict(
            "platform_admin",
            None,
            "this person is also a platform admin: only they can change how they sign in",
        ));
    }
    if elsewhere {
        return Err(AppError::conflict(
            "shared_account",
            None,
            "this person also works for other merchants: only they can change how they sign in",
        ));
    }
    Ok(())
}

/// What a change did: the sessions it ended and the person's new credential generation (a
/// sign-in finishing in the same request proves this one).
#[derive(Debug)]
#[must_use = "close the ended sessions' sockets once the transaction commits"]
pub struct Changed {
    pub ended: Ended,
    pub generation: i64,
}

/// Bumps the credential generation and ends the person's sessions but `keep` (the acting
/// one's own).
async fn changed(
    conn: &mut PgConnection,
    target: i64,
    keep: Option<SessionId>,
    reason: Reason,
) -> Result<Changed, AppError> {
    let generation: i64 = sqlx::query_scalar(
        "update public.users set credential_gen = credential_gen + 1, updated_at = now()
         where id = $1 returning credential_gen",
    )
    .bind(target)
    .fetch_one(&mut *conn)
    .await?;
    let which = Which::All { user_id: target, except: keep };
    let ended = sessions::end(conn, which, reason).await?;
    Ok(Changed { ended, generation })
}

/// Sets `target`'s password to `hash` (argon2id). Through an emailed link the address also
/// counts as verified (the email reached its owner).
pub async fn set_password(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    target: i64,
    hash: &str,
) -> Result<Changed, AppError> {
    authorize(conn, actor, target).await?;
    let verified = matches!(actor, Actor::Mailbox { .. });
    sqlx::query(
        "update public.users set password_hash = $2,
                email_verified_at = case when $3 then coalesce(email_verified_at, now()) else email_verified_at end
         where id = $1",
    )
    .bind(target)
    .bind(hash)
    .bind(verified)
    .execute(&mut *conn)
    .await?;
    let reason = match actor {
        Actor::Themself { .. } => Reason::PasswordChanged,
        _ => Reason::PasswordReset,
    };
    changed(conn, target, actor.own_session(), reason).await
}

/// Turns `target`'s second factor off and forgets their recovery codes (the person with a
/// code, or a merchant admin for an agent who lost their authenticator).
pub async fn clear_two_factor(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    target: i64,
) -> Result<Changed, AppError> {
    authorize(conn, actor, target).await?;
    totp::clear(conn, target).await?;
    changed(conn, target, actor.own_session(), Reason::TwoFactorChanged).await
}

/// Activates the authenticator `target` is setting up, if `code` comes from it: the
/// recovery codes (shown once), or `None` for a wrong code.
pub async fn enable_two_factor(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    target: i64,
    code: &str,
) -> Result<Option<(Vec<String>, Changed)>, AppError> {
    authorize(conn, actor, target).await?;
    let Some(codes) = totp::activate(conn, target, code).await? else {
        return Ok(None);
    };
    let changed = changed(conn, target, actor.own_session(), Reason::TwoFactorChanged).await?;
    Ok(Some((codes, changed)))
}

/// The operator's break-glass path for a platform admin (`kefu admin create` on an existing
/// account): password `hash` and no second factor, so the next console login enrols one.
pub async fn reset_for_console(
    conn: &mut PgConnection,
    target: i64,
    hash: &str,
) -> Result<Changed, AppError> {
    sqlx::query("update public.users set password_hash = $2 where id = $1")
        .bind(target)
        .bind(hash)
        .execute(&mut *conn)
        .await?;
    totp::clear(conn, target).await?;
    changed(conn, target, None, Reason::PasswordReset).await
}

/// Whether `actor` may send `target` an invitation (which lets whoever reads the mailbox
/// choose the password).
pub async fn may_invite(
    conn: &mut PgConnection,
    actor: &Actor<'_>,
    target: i64,
) -> Result<(), AppError> {
    authorize(conn, actor, target).await
}

/// That the credentials `proven` proved are still the person's (locking their row until
/// the caller's transaction ends, so no change slips in between).
pub async fn check_gen(conn: &mut PgConnection, proven: super::Proven) -> Result<(), AppError> {
    let generation: Option<i64> =
        sqlx::query_scalar("select credential_gen from public.users where id = $1 for update")
            .bind(proven.user_id)
            .fetch_optional(conn)
            .await?;
    if generation == Some(proven.generation) {
        Ok(())
    } else {
        Err(sessions::credentials_changed())
    }
}
