//! Signing in: the bootstrap token, registration and reset with tokens, password login with
//! server-side sessions, API tokens, and resolving a presented credential to a user — with a
//! short-lived in-memory cache so that authenticated reads do not each hit the database.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryowarden_core::{
    Action, Activity, Actor, Allowed, Impersonation, SiteRole, UserId, UserStatus,
};
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{Any, Row};

use crate::audit::Outcome;
use crate::config::Lifetimes;
use crate::context::{Ctx, Target};
use crate::db::{Db, format_ms, now_ms};
use crate::error::StoreError;
use crate::impersonation::{self, Impersonating};
use crate::passwords::Hasher;
use crate::secrets::{API_TOKEN_PREFIX, SESSION_PREFIX, Secret, hash_token};
use crate::throttle::Throttle;
use crate::users::{self, NewUser, USER_COLUMNS, User, user_from_row};

/// How a request proved who it is.
#[derive(Clone, Debug)]
pub enum Via {
    Session { id: i64, csrf: String },
    Token { id: i64 },
}

/// A resolved credential.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The user whose rights apply: while impersonating, the one impersonated (for a role, the
    /// impersonator holding that role).
    pub user: User,
    pub via: Via,
    /// Set while the session impersonates; `impersonating.by` is the real person.
    pub impersonating: Option<Impersonating>,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        let mut actor = self.user.actor();
        actor.impersonation = self.impersonating.as_ref().map(|i| Impersonation {
            by: UserId(i.by.id),
            by_role: i.by.site_role,
            scope: i.scope,
        });
        actor
    }
    pub fn ctx(&self, source: String) -> Ctx {
        let mut ctx = Ctx::for_actor(self.actor(), &self.user.username, source);
        if let Some(imp) = &self.impersonating {
            let (acting, by) = impersonation::who(imp, &self.user);
            ctx.who = acting;
            ctx.impersonator = Some(by);
            ctx.project_scope = imp.project_id;
            ctx.group_scope = imp.group.as_ref().map(|g| g.0);
        }
        ctx
    }
    /// The person behind the credential (the impersonator while impersonating).
    pub fn real_user(&self) -> &User {
        self.impersonating.as_ref().map_or(&self.user, |i| &i.by)
    }
}

/// Authentication state shared by all requests.
pub struct Auth {
    pub hasher: Hasher,
    pub throttle: Throttle,
    pub lifetimes: Lifetimes,
    cache: DashMap<String, (Arc<Principal>, Instant)>,
}

const API_TOKENS_WHILE_IMPERSONATING: &str =
    "API tokens are out of reach while impersonating: stop impersonating to manage your own";

/// How long a resolved credential is trusted without asking the database again. Changes made
/// through this server drop the user's entries at once; this bounds how long another replica's
/// revocation takes to be seen here.
const CACHE_TTL: Duration = Duration::from_secs(5);
/// `last_seen_at` of a session is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

impl Auth {
    pub fn new(lifetimes: Lifetimes, hash_concurrency: usize) -> Auth {
        Auth {
            hasher: Hasher::new(hash_concurrency),
            throttle: Throttle::default(),
            lifetimes,
            cache: DashMap::new(),
        }
    }

    /// Forgets every cached credential of `user_id` (after a change to them).
    pub fn forget_user(&self, user_id: i64) {
        self.cache
            .retain(|_, (p, _)| p.user.id != user_id && p.real_user().id != user_id);
    }

    fn forget_hash(&self, hash: &str) {
        self.cache.remove(hash);
    }

    /// The user behind a session cookie or bearer token, if it is valid now.
    pub async fn resolve(
        &self,
        db: &Db,
        presented: &str,
    ) -> Result<Option<Arc<Principal>>, StoreError> {
        if presented.len() > 200 {
            return Ok(None);
        }
        let hash = hash_token(presented);
        if let Some(entry) = self.cache.get(&hash)
            && entry.1.elapsed() < CACHE_TTL
        {
            return Ok(Some(entry.0.clone()));
        }
        let now = now_ms();
        let principal = if presented.starts_with(SESSION_PREFIX) {
            let row = sqlx::query::<Any>(
                "SELECT id, user_id, csrf_token, last_seen_at, expires_at, idle_ms FROM sessions WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(&hash)
            .fetch_optional(&db.pool)
            .await?;
            let Some(row) = row else {
                return self.miss(&hash);
            };
            let last_seen: i64 = row.try_get("last_seen_at")?;
            let expires: i64 = row.try_get("expires_at")?;
            // The idle lifetime the session started with (admin console, site-settings).
            let idle = row
                .try_get::<Option<i64>, _>("idle_ms")?
                .unwrap_or(self.lifetimes.session_idle_ms);
            if now >= expires || now - last_seen > idle {
                return self.miss(&hash);
            }
            let id: i64 = row.try_get("id")?;
            if now - last_seen > TOUCH_EVERY_MS {
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&db.pool)
                    .await?;
            }
            let user = users::get(db, row.try_get("user_id")?).await?;
            if user.status != UserStatus::Active {
                return self.miss(&hash);
            }
            let via = Via::Session {
                id,
                csrf: row.try_get("csrf_token")?,
            };
            match impersonation::load(db, id, &user).await? {
                Some((imp, acting_as)) => Principal {
                    user: acting_as,
                    via,
                    impersonating: Some(imp),
                },
                None => Principal {
                    user,
                    via,
                    impersonating: None,
                },
            }
        } else if presented.starts_with(API_TOKEN_PREFIX) {
            let row = sqlx::query::<Any>(
                "SELECT id, user_id, expires_at, last_used_at FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
            )
            .bind(&hash)
            .fetch_optional(&db.pool)
            .await?;
            let Some(row) = row else {
                return self.miss(&hash);
            };
            if row
                .try_get::<Option<i64>, _>("expires_at")?
                .is_some_and(|e| now >= e)
            {
                return self.miss(&hash);
            }
            let id: i64 = row.try_get("id")?;
            if row
                .try_get::<Option<i64>, _>("last_used_at")?
                .is_none_or(|t| now - t > TOUCH_EVERY_MS)
            {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&db.pool)
                    .await?;
            }
            let user = users::get(db, row.try_get("user_id")?).await?;
            Principal {
                user,
                via: Via::Token { id },
                impersonating: None,
            }
        } else {
            return Ok(None);
        };
        if principal.real_user().status != UserStatus::Active {
            return self.miss(&hash);
        }
        let principal = Arc::new(principal);
        // An impersonating session is read afresh on every request, so that its end (stop, time
        // limit, either side deactivated) holds at once, on every replica.
        if principal.impersonating.is_none() {
            self.cache.insert(hash, (principal.clone(), Instant::now()));
        }
        Ok(Some(principal))
    }

    fn miss(&self, hash: &str) -> Result<Option<Arc<Principal>>, StoreError> {
        self.forget_hash(hash);
        Ok(None)
    }

    /// Signs in with a password. `Err(Throttled)` carries how long to wait.
    pub async fn login(
        &self,
        db: &Db,
        username: &str,
        password: String,
        addr: IpAddr,
        user_agent: &str,
        accept_terms: bool,
    ) -> Result<LoginOutcome, StoreError> {
        if let Err(wait) = self.throttle.check(username, addr) {
            return Ok(LoginOutcome::Throttled(wait));
        }
        let policy = crate::console::authentication::policy(db).await?;
        if let Some(wait) = self.throttle.locked(username) {
            return Ok(LoginOutcome::Throttled(wait));
        }
        let found = users::find_by_username(db, username).await?;
        let stored = found.as_ref().and_then(|(_, h)| h.clone());
        let ok = self.hasher.verify(password, stored).await?;
        let source = addr.to_string();
        let user = match found {
            Some((user, _)) if ok && user.status == UserStatus::Active => user,
            found => {
                self.throttle.failed(username, addr);
                let locked = policy.lockout().is_some_and(|(attempts, duration)| {
                    self.throttle.lockout_failed(username, attempts, duration)
                });
                let target = match &found {
                    Some((u, _)) => u.audit_target(),
                    None => Target {
                        kind: "user",
                        id: None,
                        name: Some(username.chars().take(64).collect()),
                    },
                };
                let reason = match &found {
                    Some((u, _)) if ok => format!("account is {}", u.status),
                    _ => "wrong username or password".to_owned(),
                };
                Ctx::system("login", &source)
                    .record(
                        db,
                        cryowarden_core::Event::Login,
                        &target,
                        Outcome::Denied,
                        Some(reason),
                        None,
                        None,
                    )
                    .await?;
                if locked {
                    let minutes = policy.lockout_minutes;
                    Ctx::system("lockout", &source)
                        .record(
                            db,
                            cryowarden_core::Event::LockAccount,
                            &target,
                            Outcome::Ok,
                            None,
                            None,
                            Some(json!({ "minutes": minutes })),
                        )
                        .await?;
                }
                return Ok(LoginOutcome::Refused);
            }
        };
        // The site-wide terms of use (admin console): accepted once per version.
        let terms = crate::console::terms::pending(db, user.id).await?;
        if let Some(t) = terms.as_ref().filter(|_| !accept_terms) {
            return Ok(LoginOutcome::TermsRequired {
                text: t.text.clone(),
                version: t.version,
            });
        }
        self.throttle.succeeded(username, addr);
        let (idle_ms, absolute_ms) = crate::console::site::lifetimes(db, &self.lifetimes).await?;
        let secret = Secret::generate(SESSION_PREFIX);
        let csrf = Secret::generate("").expose().to_owned();
        let now = now_ms();
        let mut tx = db.begin_write().await?;
        sqlx::query(
            "INSERT INTO sessions (user_id, token_hash, csrf_token, created_at, last_seen_at, expires_at, source, user_agent, idle_ms) \
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)",
        )
        .bind(user.id)
        .bind(secret.hash())
        .bind(&csrf)
        .bind(now)
        .bind(now + absolute_ms)
        .bind(&source)
        .bind(user_agent.chars().take(300).collect::<String>())
        .bind(idle_ms)
        .execute(&mut *tx.tx)
        .await?;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user.id)
            .execute(&mut *tx.tx)
            .await?;
        let ctx = Ctx::for_actor(user.actor(), &user.username, source);
        if let Some(t) = &terms {
            crate::console::terms::record_acceptance(
                &mut tx,
                &ctx,
                &user.audit_target(),
                user.id,
                t,
            )
            .await?;
        }
        ctx.audit_ok(
            &mut tx,
            cryowarden_core::Event::Login,
            &user.audit_target(),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(LoginOutcome::Session {
            token: secret,
            csrf,
            user,
            expires_at: now + absolute_ms,
        })
    }

    /// Ends a session.
    pub async fn logout(
        &self,
        db: &Db,
        principal: &Principal,
        source: String,
    ) -> Result<(), StoreError> {
        let Via::Session { id, .. } = principal.via else {
            return Err(StoreError::invalid(
                "authorization",
                "logout ends a browser session; revoke an API token with DELETE /api/v1/tokens/{id}",
            ));
        };
        // An impersonation ends with its session, recorded under both names.
        impersonation::stop(db, principal, source.clone(), "logout").await?;
        let mut tx = db.begin_write().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        let ctx = principal.ctx(source);
        ctx.audit_ok(
            &mut tx,
            cryowarden_core::Event::Logout,
            &principal.user.audit_target(),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        self.forget_user(principal.real_user().id);
        Ok(())
    }

    /// Creates the one-time token that registers the first Site Admin, if there is no user yet.
    pub async fn bootstrap_token(&self, db: &Db) -> Result<Option<Secret>, StoreError> {
        if users::count(db).await? > 0 {
            return Ok(None);
        }
        let mut tx = db.begin_write().await?;
        let (secret, expires) = users::issue_token(
            &mut tx,
            None,
            "bootstrap",
            self.lifetimes.bootstrap_ms,
            None,
        )
        .await?;
        let ctx = Ctx::system("startup", "local");
        ctx.audit_ok(
            &mut tx,
            cryowarden_core::Event::IssueBootstrapToken,
            &Target::instance(),
            None,
            Some(json!({ "expires_at": format_ms(expires) })),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(secret))
    }

    /// Redeems a registration (or bootstrap) token: sets the password and activates the user.
    pub async fn register(
        &self,
        db: &Db,
        req: RegisterRequest,
        source: String,
    ) -> Result<User, StoreError> {
        crate::console::authentication::check_password(db, &req.password).await?;
        let hash_of_token = hash_token(&req.token);
        let token = find_token(db, &hash_of_token, &["register", "bootstrap"]).await?;
        let password_hash = self.hasher.hash(req.password.clone()).await?;
        let now = now_ms();
        let ctx = Ctx::system("register", &source);
        let mut tx = db.begin_write().await?;
        // Claim the token inside the transaction: a second use finds it used.
        let claimed =
            sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1")
                .bind(now)
                .bind(token.id)
                .execute(&mut *tx.tx)
                .await?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::BadToken);
        }
        let user = match token.user_id {
            None => {
                // The bootstrap token: creates the first Site Admin, if there still is none.
                let (Some(username), Some(email)) = (req.username.as_deref(), req.email.as_deref())
                else {
                    return Err(StoreError::invalid(
                        "username",
                        "registering the first Site Admin needs a username and an email",
                    ));
                };
                let new = NewUser {
                    username: users::validate_username(username)?,
                    email: users::validate_email(email)?,
                    first_name: users::validate_name(
                        "first_name",
                        req.first_name.as_deref().unwrap_or(""),
                    )?,
                    last_name: users::validate_name(
                        "last_name",
                        req.last_name.as_deref().unwrap_or(""),
                    )?,
                    site_role: Some(SiteRole::SiteAdmin),
                };
                let admins: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE site_role = 'site_admin'")
                        .fetch_one(&mut *tx.tx)
                        .await?;
                if admins > 0 {
                    return Err(StoreError::BadToken);
                }
                let proof = Allowed::system(Activity::CreateUser.into(), "bootstrap", None);
                let user = users::insert(
                    &mut tx,
                    &proof,
                    &new,
                    UserStatus::Active,
                    Some(&password_hash),
                )
                .await?;
                ctx.audit_ok(
                    &mut tx,
                    cryowarden_core::Event::BootstrapSiteAdmin,
                    &user.audit_target(),
                    None,
                    Some(users::snapshot(&user)),
                )
                .await?;
                user
            }
            Some(user_id) => {
                let mut sets =
                    String::from("password_hash = $1, status = 'active', updated_at = $2");
                let mut n = 3;
                let mut extra: Vec<String> = Vec::new();
                for (field, value) in [
                    ("first_name", &req.first_name),
                    ("last_name", &req.last_name),
                ] {
                    if let Some(v) = value {
                        extra.push(users::validate_name(
                            if field == "first_name" {
                                "first_name"
                            } else {
                                "last_name"
                            },
                            v,
                        )?);
                        sets.push_str(&format!(", {field} = ${n}"));
                        n += 1;
                    }
                }
                if req.username.is_some() || req.email.is_some() {
                    return Err(StoreError::invalid(
                        "username",
                        "your username and email were set by the admin who invited you; leave them out",
                    ));
                }
                crate::console::active_users::check_seat(
                    &mut tx,
                    crate::console::active_users::Seat::Register,
                )
                .await?;
                let sql = format!("UPDATE users SET {sets} WHERE id = ${n} AND status = 'invited'");
                let mut q = sqlx::query(&sql).bind(&password_hash).bind(now);
                for v in extra {
                    q = q.bind(v);
                }
                if q.bind(user_id).execute(&mut *tx.tx).await?.rows_affected() != 1 {
                    return Err(StoreError::BadToken);
                }
                let row =
                    sqlx::query::<Any>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                        .bind(user_id)
                        .fetch_one(&mut *tx.tx)
                        .await?;
                let user = user_from_row(&row)?;
                let proof = Allowed::system(
                    Activity::ChangePassword.into(),
                    "redeem-token",
                    Some(UserId(user_id)),
                );
                proof.require(Action::Activity(Activity::ChangePassword))?;
                ctx.audit_ok(
                    &mut tx,
                    cryowarden_core::Event::Register,
                    &user.audit_target(),
                    None,
                    None,
                )
                .await?;
                user
            }
        };
        tx.commit().await?;
        Ok(user)
    }

    /// Redeems a reset token: sets a new password and signs the user out everywhere.
    pub async fn reset(
        &self,
        db: &Db,
        token: &str,
        password: String,
        source: String,
    ) -> Result<User, StoreError> {
        crate::console::authentication::check_password(db, &password).await?;
        let found = find_token(db, &hash_token(token), &["reset"]).await?;
        let user_id = found.user_id.ok_or(StoreError::BadToken)?;
        let password_hash = self.hasher.hash(password).await?;
        let now = now_ms();
        let mut tx = db.begin_write().await?;
        let claimed =
            sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND expires_at > $1")
                .bind(now)
                .bind(found.id)
                .execute(&mut *tx.tx)
                .await?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::BadToken);
        }
        let proof = Allowed::system(
            Activity::ChangePassword.into(),
            "redeem-token",
            Some(UserId(user_id)),
        );
        proof.require(Activity::ChangePassword.into())?;
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(&password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx.tx)
            .await?;
        users::revoke_credentials(&mut tx, user_id, now).await?;
        let row = sqlx::query::<Any>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(user_id)
            .fetch_one(&mut *tx.tx)
            .await?;
        let user = user_from_row(&row)?;
        let ctx = Ctx::system("reset", &source);
        ctx.audit_ok(
            &mut tx,
            cryowarden_core::Event::ResetPassword,
            &user.audit_target(),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        self.forget_user(user_id);
        Ok(user)
    }

    /// Creates an API token for the caller; the secret is returned once.
    pub async fn create_api_token(
        &self,
        db: &Db,
        principal: &Principal,
        req: NewApiToken,
        source: String,
    ) -> Result<(ApiToken, Secret), StoreError> {
        if principal.impersonating.is_some() {
            return Err(StoreError::Impersonating(API_TOKENS_WHILE_IMPERSONATING));
        }
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::invalid("name", "must be 1 to 100 characters"));
        }
        if let Some(days) = req.expires_in_days
            && !(1..=3650).contains(&days)
        {
            return Err(StoreError::invalid(
                "expires_in_days",
                "must be between 1 and 3650",
            ));
        }
        let secret = Secret::generate(API_TOKEN_PREFIX);
        let now = now_ms();
        let expires = req.expires_in_days.map(|d| now + d * 86_400_000);
        let prefix: String = secret.expose().chars().take(12).collect();
        let mut tx = db.begin_write().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(principal.user.id)
        .bind(&name)
        .bind(secret.hash())
        .bind(&prefix)
        .bind(now)
        .bind(expires)
        .fetch_one(&mut *tx.tx)
        .await?;
        let target = Target {
            kind: "api-token",
            id: Some(id.to_string()),
            name: Some(name.clone()),
        };
        principal
            .ctx(source)
            .audit_ok(
                &mut tx,
                cryowarden_core::Event::CreateApiToken,
                &target,
                None,
                Some(json!({ "name": name, "prefix": prefix })),
            )
            .await?;
        tx.commit().await?;
        let token = ApiToken {
            id,
            name,
            prefix,
            created_at: format_ms(now),
            last_used_at: None,
            expires_at: expires.map(format_ms),
            revoked: false,
        };
        Ok((token, secret))
    }

    pub async fn list_api_tokens(
        &self,
        db: &Db,
        principal: &Principal,
    ) -> Result<Vec<ApiToken>, StoreError> {
        if principal.impersonating.is_some() {
            return Err(StoreError::Impersonating(API_TOKENS_WHILE_IMPERSONATING));
        }
        let rows = sqlx::query::<Any>("SELECT id, name, prefix, created_at, last_used_at, expires_at, revoked_at FROM api_tokens WHERE user_id = $1 ORDER BY id")
            .bind(principal.user.id)
            .fetch_all(&db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ApiToken {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    prefix: r.try_get("prefix")?,
                    created_at: format_ms(r.try_get("created_at")?),
                    last_used_at: r.try_get::<Option<i64>, _>("last_used_at")?.map(format_ms),
                    expires_at: r.try_get::<Option<i64>, _>("expires_at")?.map(format_ms),
                    revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
                })
            })
            .collect()
    }

    /// Revokes one of the caller's own API tokens. Another user's token is "not found".
    pub async fn revoke_api_token(
        &self,
        db: &Db,
        principal: &Principal,
        id: i64,
        source: String,
    ) -> Result<(), StoreError> {
        if principal.impersonating.is_some() {
            return Err(StoreError::Impersonating(API_TOKENS_WHILE_IMPERSONATING));
        }
        let mut tx = db.begin_write().await?;
        let row = sqlx::query::<Any>(
            "SELECT name FROM api_tokens WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(principal.user.id)
        .fetch_optional(&mut *tx.tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound { what: "API token" });
        };
        let name: String = row.try_get("name")?;
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *tx.tx)
            .await?;
        let target = Target {
            kind: "api-token",
            id: Some(id.to_string()),
            name: Some(name),
        };
        principal
            .ctx(source)
            .audit_ok(
                &mut tx,
                cryowarden_core::Event::RevokeApiToken,
                &target,
                None,
                None,
            )
            .await?;
        tx.commit().await?;
        self.forget_user(principal.user.id);
        Ok(())
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "one value per sign-in attempt, moved once and never stored"
)]
pub enum LoginOutcome {
    Session {
        token: Secret,
        csrf: String,
        user: User,
        expires_at: i64,
    },
    Refused,
    Throttled(Duration),
    /// The site-wide terms of use must be accepted first (send `accept_terms: true`).
    TermsRequired {
        text: String,
        version: i64,
    },
}

struct FoundToken {
    id: i64,
    user_id: Option<i64>,
}

async fn find_token(db: &Db, hash: &str, kinds: &[&str]) -> Result<FoundToken, StoreError> {
    let row = sqlx::query::<Any>(
        "SELECT id, user_id, kind, expires_at, used_at FROM user_tokens WHERE token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(&db.pool)
    .await?;
    let Some(row) = row else {
        return Err(StoreError::BadToken);
    };
    let kind: String = row.try_get("kind")?;
    if !kinds.contains(&kind.as_str())
        || row.try_get::<Option<i64>, _>("used_at")?.is_some()
        || row.try_get::<i64, _>("expires_at")? <= now_ms()
    {
        return Err(StoreError::BadToken);
    }
    Ok(FoundToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
    })
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub token: String,
    pub password: String,
    /// Only when registering the first Site Admin with the bootstrap token.
    pub username: Option<String>,
    /// Only when registering the first Site Admin with the bootstrap token.
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    pub name: String,
    /// Days until it expires; absent for no expiry.
    pub expires_in_days: Option<i64>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// The first characters, to recognise it by.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub revoked: bool,
}

/// Creates the first Site Admin offline (`cryowarden admin bootstrap`). Refuses if a Site Admin
/// exists already.
pub async fn bootstrap_site_admin(
    db: &Db,
    hasher: &Hasher,
    new: NewUser,
    password: String,
) -> Result<User, StoreError> {
    crate::console::authentication::check_password(db, &password).await?;
    let new = NewUser {
        username: users::validate_username(&new.username)?,
        email: users::validate_email(&new.email)?,
        first_name: users::validate_name("first_name", &new.first_name)?,
        last_name: users::validate_name("last_name", &new.last_name)?,
        site_role: Some(SiteRole::SiteAdmin),
    };
    let hash = hasher.hash(password).await?;
    let mut tx = db.begin_write().await?;
    let admins: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE site_role = 'site_admin'")
            .fetch_one(&mut *tx.tx)
            .await?;
    if admins > 0 {
        return Err(StoreError::invalid(
            "site_admin",
            "a Site Admin exists already: sign in as them and create users there",
        ));
    }
    let proof = Allowed::system(Activity::CreateUser.into(), "bootstrap", None);
    let user = users::insert(&mut tx, &proof, &new, UserStatus::Active, Some(&hash)).await?;
    sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE user_id IS NULL AND used_at IS NULL")
        .bind(now_ms())
        .execute(&mut *tx.tx)
        .await?;
    let ctx = Ctx::system("bootstrap", "cli");
    ctx.audit_ok(
        &mut tx,
        cryowarden_core::Event::BootstrapSiteAdmin,
        &user.audit_target(),
        None,
        Some(users::snapshot(&user)),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}
