//! The slot pool follows the apps: when a deploy (or an activate that loads a release)
//! finds no slot of its kind free, it adds a batch of slots under the node lock, through
//! `skiff-node slots-grow` (one Apache graceful reload), and goes on with a new slot.
//!
//! A graceful reload restarts every mod_wsgi daemon and Passenger app on the node: measured
//! on a test node (docs/node-layout.md), each one stalls every app for ~0.4-1 s and fails
//! about 2 in-flight requests per Python app at 100 requests/s. So the pool grows by a
//! batch ([`BATCH`]), never one slot at a time: a reload per two new apps at most.

use crate::error::Result;
use crate::node_state::{NodeState, SlotKind};
use crate::provision::MAX_SLOTS;
use crate::transport::ssh::Session;

use super::{Event, EventFn, remote};

/// Slots added at once (two apps' current + prev; an idle Python slot costs ~9 MB PSS).
pub const BATCH: usize = 4;

/// The pool size after growing a full pool of `len` slots, if it can grow.
pub fn grown_size(len: usize) -> Option<usize> {
    (len < MAX_SLOTS).then(|| (len + BATCH).min(MAX_SLOTS))
}

/// The note a deploy shows when it grew the pool.
pub fn grew_note(kind: SlotKind, from: usize, to: usize) -> String {
    format!(
        "the {} slot pool grew from {from} to {to} (one Apache graceful reload)",
        kind.label()
    )
}

/// [`NodeState::choose_slot`], growing the pool of `kind` by a batch
/// when it is full. Needs the node lock.
#[allow(clippy::too_many_arguments)]
pub(super) async fn choose_or_grow(
    session: &Session,
    node: &str,
    st: &NodeState,
    app: &str,
    n: u32,
    kind: SlotKind,
    pool: &[String],
    owner: &str,
    events: &EventFn,
) -> Result<String> {
    let full = match st.choose_slot(app, n, pool) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let Some(to) = grown_size(pool.len()) else {
        return Err(full);
    };
    let added = remote::grow(session, app, owner, kind, to).await?;
    let mut grown = pool.to_vec();
    grown.extend(added);
    grown.sort();
    grown.dedup();
    events(Event::Note {
        node: node.to_string(),
        message: grew_note(kind, pool.len(), grown.len()),
    });
    st.choose_slot(app, n, &grown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_a_batch_up_to_the_cap() {
        assert_eq!(grown_size(8), Some(12));
        assert_eq!(grown_size(0), Some(4));
        assert_eq!(grown_size(97), Some(99));
        assert_eq!(grown_size(99), None);
        assert_eq!(
            grew_note(SlotKind::Python, 8, 12),
            "the Python slot pool grew from 8 to 12 (one Apache graceful reload)"
        );
    }
}
