//! The change feed: every change of every organization's entitlements, in
//! an order that never lets a reader skip one (see `store::feed`).

use crate::compute::Entitlement;
use crate::engine::Engine;
use crate::store::feed::{self, FeedRow};
use crate::view::EntitlementView;
use crate::{Error, clock};

/// One change, as the feed hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedChange {
    /// Where the change stands in the feed: the cursor after it.
    pub position: i64,
    /// The organization's entitlements at this version.
    pub entitlements: EntitlementView,
    /// When the change was made (unix seconds).
    pub changed_at: i64,
}

/// A page of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// The changes after the cursor asked for, oldest first.
    pub changes: Vec<FeedChange>,
    /// Where to read on from: the last change's position, or the cursor
    /// asked for when none followed it.
    pub next: i64,
}

impl Engine {
    /// Gives every committed change its feed position (see `store::feed`);
    /// returns how many got one. Cheap when none waits.
    pub async fn sequence_changes(&self) -> Result<usize, Error> {
        if !self
            .database()
            .read(async |c| feed::unsequenced(c).await)
            .await?
        {
            return Ok(0);
        }
        self.write(async |conn| feed::sequence(conn).await).await
    }

    /// Up to `limit` changes after the cursor `after` (0: from the oldest
    /// change of the last `start_secs`), positioning first whatever has
    /// committed. A cursor past the newest change, or one that changes
    /// after it were pruned from (see [`Engine::prune`]), is
    /// [`Error::BadCursor`]; a reader that has kept up never gets one,
    /// however quiet the feed.
    pub async fn changes(
        &self,
        after: i64,
        limit: usize,
        start_secs: i64,
    ) -> Result<FeedPage, Error> {
        self.sequence_changes().await?;
        let since = clock::now().saturating_sub(start_secs);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .database()
            .read(async |conn| {
                if after == 0 {
                    return feed::after(conn, 0, since, limit).await;
                }
                if after > feed::newest(conn).await? {
                    return Err(Error::BadCursor(format!("no change has cursor {after}")));
                }
                if after < feed::pruned_upto(conn).await? {
                    return Err(Error::BadCursor(format!(
                        "cursor {after} is older than the feed keeps: changes after it \
                         were deleted (retention.changes_days); read from the start"
                    )));
                }
                feed::after(conn, after, i64::MIN, limit).await
            })
            .await?;
        let changes = rows
            .into_iter()
            .map(FeedChange::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = changes.last().map_or(after, |c| c.position);
        Ok(FeedPage { changes, next })
    }
}

impl FeedChange {
    pub(crate) fn from_row(row: FeedRow) -> Result<Self, Error> {
        let entitlement = match &row.answer {
            Some(answer) => serde_json::from_str(answer)?,
            // Stored before changes carried their whole answer.
            None => Entitlement::bare(row.plan, row.status, serde_json::from_str(&row.features)?),
        };
        let entitlements = EntitlementView::new(
            &row.org_id,
            entitlement,
            row.version,
            Some(row.changed_at),
            None,
        );
        Ok(Self {
            position: row.feed_position.unwrap_or_default(),
            entitlements,
            changed_at: row.changed_at,
        })
    }
}
