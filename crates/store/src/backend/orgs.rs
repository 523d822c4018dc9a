//! Organizations, and what the Users page shows about their members.

use std::str::FromStr;

use clinic_auth_core::policy::GraceDays;
use clinic_auth_core::{AccountId, MethodSet, MfaMode, OrgId, OrgKind, OrgMfa, UnixTime};

use super::factors::factor_from_row;
use super::sql::Row;
use super::{Db, corrupt, on_constraint, parse_with};
use crate::{LogoInfo, NewAuditEvent, Org, OrgBranding, OrgLogo, OrgMemberSecurity, StoreResult};

impl Db {
    pub(super) async fn insert_org(&self, org: &Org, audit: &NewAuditEvent) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        tx.query(
            "INSERT INTO organizations
               (id, name, kind, created_at, mfa_enabled, mfa_mode, mfa_methods, mfa_grace_days, mfa_required_since)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(org.id.as_str())
        .bind(&org.name)
        .bind(org.kind.as_str())
        .bind(org.created_at.0)
        .bind(org.mfa.enabled)
        .bind(org.mfa.mode.as_str())
        .bind(org.mfa.methods.to_string())
        .bind(i64::from(org.mfa.grace_days.get()))
        .bind(org.mfa.required_since.map(|t| t.0))
        .execute()
        .await
        .map_err(|e| on_constraint(e, "organization", "organization"))?;
        self.commit_audited(tx, audit).await
    }

    pub(super) async fn get_org(&self, id: &OrgId) -> StoreResult<Option<Org>> {
        let row = self.query("SELECT * FROM organizations WHERE id = $1").bind(id.as_str()).fetch_optional().await?;
        row.as_ref().map(org_from_row).transpose()
    }

    pub(super) async fn list_orgs(&self) -> StoreResult<Vec<Org>> {
        let rows = self.query("SELECT * FROM organizations ORDER BY name, id").fetch_all().await?;
        rows.iter().map(org_from_row).collect()
    }

    /// Sets the organization's MFA policy (grace period and the start of Mandatory 2FA
    /// included, as given); false if there is no such organization.
    pub(super) async fn set_org_mfa(&self, id: &OrgId, mfa: &OrgMfa, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query(
                "UPDATE organizations SET mfa_enabled = $1, mfa_mode = $2, mfa_methods = $3, mfa_grace_days = $4,
                   mfa_required_since = $5
                 WHERE id = $6",
            )
            .bind(mfa.enabled)
            .bind(mfa.mode.as_str())
            .bind(mfa.methods.to_string())
            .bind(i64::from(mfa.grace_days.get()))
            .bind(mfa.required_since.map(|t| t.0))
            .bind(id.as_str())
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn get_org_branding(&self, id: &OrgId) -> StoreResult<Option<OrgBranding>> {
        let row = self
            .query(
                "SELECT o.display_name, o.accent_color, l.content_type, l.sha256, l.updated_at
                 FROM organizations o LEFT JOIN org_logos l ON l.org_id = o.id WHERE o.id = $1",
            )
            .bind(id.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        let logo = match row.try_get::<Option<String>>("content_type")? {
            Some(content_type) => Some(LogoInfo {
                content_type,
                sha256: row.try_get("sha256")?,
                updated_at: UnixTime(row.try_get("updated_at")?),
            }),
            None => None,
        };
        Ok(Some(OrgBranding {
            display_name: row.try_get("display_name")?,
            accent_color: row.try_get("accent_color")?,
            logo,
        }))
    }

    pub(super) async fn set_org_branding(
        &self,
        id: &OrgId,
        display_name: Option<&str>,
        accent_color: Option<&str>,
        audit: &NewAuditEvent,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx
            .query("UPDATE organizations SET display_name = $1, accent_color = $2 WHERE id = $3")
            .bind(display_name.map(str::to_owned))
            .bind(accent_color.map(str::to_owned))
            .bind(id.as_str())
            .execute()
            .await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn put_org_logo(&self, id: &OrgId, logo: &OrgLogo, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let exists = tx.query("SELECT id FROM organizations WHERE id = $1").bind(id.as_str()).fetch_optional().await?;
        if exists.is_some() {
            tx.query(
                "INSERT INTO org_logos (org_id, content_type, bytes, sha256, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (org_id) DO UPDATE SET content_type = excluded.content_type, bytes = excluded.bytes,
                   sha256 = excluded.sha256, updated_at = excluded.updated_at",
            )
            .bind(id.as_str())
            .bind(logo.content_type.clone())
            .bind(logo.bytes.clone())
            .bind(logo.sha256.clone())
            .bind(logo.updated_at.0)
            .execute()
            .await?;
        }
        self.commit_audited_if(tx, exists.is_some(), audit).await
    }

    pub(super) async fn delete_org_logo(&self, id: &OrgId, audit: &NewAuditEvent) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let done = tx.query("DELETE FROM org_logos WHERE org_id = $1").bind(id.as_str()).execute().await?;
        self.commit_audited_if(tx, done == 1, audit).await
    }

    pub(super) async fn get_org_logo(&self, id: &OrgId) -> StoreResult<Option<OrgLogo>> {
        let row = self
            .query("SELECT content_type, bytes, sha256, updated_at FROM org_logos WHERE org_id = $1")
            .bind(id.as_str())
            .fetch_optional()
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(OrgLogo {
            content_type: row.try_get("content_type")?,
            bytes: row.try_get("bytes")?,
            sha256: row.try_get("sha256")?,
            updated_at: UnixTime(row.try_get("updated_at")?),
        }))
    }

    /// Factors, recovery codes and session counts of every member of `org`, in three
    /// queries rather than three per member.
    pub(super) async fn org_member_security(&self, org: &OrgId) -> StoreResult<OrgMemberSecurity> {
        let factors = self
            .query(
                "SELECT f.* FROM factors f JOIN accounts a ON a.id = f.account_id
                 WHERE a.org_id = $1 AND a.kind = 'member' ORDER BY f.created_at, f.id",
            )
            .bind(org.as_str())
            .fetch_all()
            .await?
            .iter()
            .map(factor_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let parse = |s: String| parse_with(&s, AccountId::parse, "account id");
        let with_recovery_code = self
            .query(
                "SELECT r.account_id FROM recovery_codes r JOIN accounts a ON a.id = r.account_id
                 WHERE a.org_id = $1 AND a.kind = 'member'",
            )
            .bind(org.as_str())
            .fetch_all()
            .await?
            .iter()
            .map(|r| parse(r.try_get("account_id")?))
            .collect::<StoreResult<Vec<_>>>()?;
        let sessions = self
            .query(
                "SELECT s.account_id, COUNT(*) AS n FROM sessions s JOIN accounts a ON a.id = s.account_id
                 WHERE a.org_id = $1 AND a.kind = 'member' GROUP BY s.account_id",
            )
            .bind(org.as_str())
            .fetch_all()
            .await?
            .iter()
            .map(|r| Ok((parse(r.try_get("account_id")?)?, r.try_get("n")?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(OrgMemberSecurity { factors, with_recovery_code, sessions })
    }
}

pub(super) fn org_from_row(row: &Row) -> StoreResult<Org> {
    Ok(Org {
        id: parse_with(&row.try_get::<String>("id")?, OrgId::parse, "organization id")?,
        name: row.try_get("name")?,
        kind: parse_with(&row.try_get::<String>("kind")?, OrgKind::from_str, "organization kind")?,
        created_at: UnixTime(row.try_get("created_at")?),
        mfa: OrgMfa {
            enabled: row.try_get("mfa_enabled")?,
            mode: parse_with(&row.try_get::<String>("mfa_mode")?, MfaMode::from_str, "MFA mode")?,
            methods: parse_with(&row.try_get::<String>("mfa_methods")?, MethodSet::parse, "MFA methods")?,
            grace_days: GraceDays::new(row.try_get("mfa_grace_days")?).map_err(|_| corrupt("MFA grace days"))?,
            required_since: row.try_get::<Option<i64>>("mfa_required_since")?.map(UnixTime),
        },
    })
}
