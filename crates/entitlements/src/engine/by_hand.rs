//! Grants given and revoked by hand, each in one transaction with the
//! organization's recomputed entitlements and a note in its history.

use super::Engine;
use crate::Error;
use crate::catalog::FeatureValue;
use crate::clock::now;
use crate::grants::{Grant, GrantRequest};
use crate::store::{Cause, grants, notes, organizations};

impl Engine {
    /// Gives the organization a grant from `by` (a token's or an
    /// operator's name); its entitlements are recomputed in the same
    /// transaction.
    #[tracing::instrument(skip_all, fields(org_id = %org_id))]
    pub async fn grant(
        &self,
        org_id: &str,
        request: GrantRequest,
        by: &str,
    ) -> Result<Grant, Error> {
        let valid = request.validate(&self.catalog, now())?;
        let id = format!("grant_{}", uuid::Uuid::new_v4().simple());
        let granted = self
            .write(async |conn| {
                let now = organizations::lock(conn, org_id, now()).await?;
                let grant = Grant {
                    id: id.clone(),
                    org_id: org_id.to_owned(),
                    plan: valid.plan,
                    features: valid.features,
                    quantity: valid.quantity,
                    expires_at: valid.expires_at,
                    reason: valid.reason,
                    created_at: now,
                    created_by: by.to_owned(),
                    revoked_at: None,
                    revoked_by: None,
                };
                grants::insert(conn, &grant).await?;
                let detail = format!("given by {by}: {}", describe(&grant));
                notes::add(
                    conn,
                    org_id,
                    "grant_created",
                    Cause::Grant(&id),
                    &detail,
                    now,
                )
                .await?;
                self.recompute(conn, org_id, Cause::Grant(&id), now).await?;
                Ok(grant)
            })
            .await?;
        tracing::info!(grant_id = %granted.id, by, "grant given");
        Ok(granted)
    }

    /// Every grant of the organization, newest first, revoked and expired
    /// ones too.
    pub async fn grants(&self, org_id: &str) -> Result<Vec<Grant>, Error> {
        let mut pooled = self.db.get().await?;
        grants::of_org(&mut pooled.conn(), org_id).await
    }

    /// Revokes the organization's grant `id` on behalf of `by`; the record
    /// stays, and the entitlements are recomputed in the same transaction.
    #[tracing::instrument(skip_all, fields(org_id = %org_id, grant_id = %id))]
    pub async fn revoke_grant(&self, org_id: &str, id: &str, by: &str) -> Result<(), Error> {
        self.write(async |conn| {
            let now = organizations::lock(conn, org_id, now()).await?;
            let grant = grants::get(conn, org_id, id)
                .await?
                .ok_or_else(|| Error::UnknownGrant(id.to_owned()))?;
            if grant.revoked_at.is_some() {
                return Err(Error::GrantRevoked(id.to_owned()));
            }
            grants::revoke(conn, id, by, now).await?;
            let detail = format!("revoked by {by}: {}", describe(&grant));
            notes::add(
                conn,
                org_id,
                "grant_revoked",
                Cause::Grant(id),
                &detail,
                now,
            )
            .await?;
            self.recompute(conn, org_id, Cause::Grant(id), now).await
        })
        .await?;
        tracing::info!(by, "grant revoked");
        Ok(())
    }
}

/// What a grant gives, for the history.
fn describe(grant: &Grant) -> String {
    let what = match &grant.plan {
        Some(plan) if grant.quantity > 1 => format!("plan {plan} x{}", grant.quantity),
        Some(plan) => format!("plan {plan}"),
        None => {
            let features: Vec<String> = grant
                .features
                .iter()
                .map(|(name, value)| match value {
                    FeatureValue::Flag(on) => format!("{name}={on}"),
                    FeatureValue::Limit(n) => format!("{name}={n}"),
                })
                .collect();
            format!("features {}", features.join(", "))
        }
    };
    match &grant.reason {
        Some(reason) => format!("{what} ({reason})"),
        None => what,
    }
}
