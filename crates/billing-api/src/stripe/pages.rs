//! One pager over Stripe's list endpoints: each page is applied while the
//! next one is read, so a run costs the slower of the two, not their sum.

use crate::stripe::progress::Progress;
use crate::stripe::reconcile::ReconcileError;

/// Reads every page through `read` (given the id of the last item of the
/// page before, as `id_of` tells it; `None` for the first), and folds each
/// into `state` through `apply` while the next is read; tells `progress`
/// of each page. Arguments and state are owned, so the run is a plain
/// future that can be spawned.
pub(crate) async fn fold_pages<T, S, Read, Apply>(
    progress: &mut Progress,
    read: impl Fn(Option<String>) -> Read,
    id_of: impl Fn(&T) -> String,
    mut state: S,
    apply: impl Fn(S, Vec<T>) -> Apply,
) -> Result<S, ReconcileError>
where
    Read: Future<Output = Result<(Vec<T>, bool), ReconcileError>>,
    Apply: Future<Output = Result<S, ReconcileError>>,
{
    let mut page = read(None).await?;
    loop {
        let (items, more) = page;
        let after = items.last().map(&id_of).filter(|_| more);
        let count = items.len();
        let next = async {
            match after {
                Some(after) => Some(read(Some(after)).await),
                None => None,
            }
        };
        let (next, applied) = tokio::join!(next, apply(state, items));
        state = applied?;
        progress.page(count);
        match next {
            Some(next) => page = next?,
            None => break,
        }
    }
    progress.finish();
    Ok(state)
}
