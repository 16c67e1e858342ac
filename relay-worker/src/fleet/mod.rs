//! The worker fleet: who is alive, and which sites each worker consumes.
//!
//! - [`membership`]: workers announce themselves through the broker and see each other.
//! - [`assign`]: the same share of the sites, computed by every worker from the members alone.

pub mod assign;
pub mod membership;

use std::collections::BTreeSet;
use std::sync::Arc;

use relay_contract::SiteId;
use tokio::sync::watch;

use crate::metrics;

/// Turns each site's switch on when the fleet's share (computed from `view`)
/// gives it to `me`, off when it gives it to another worker. Before the view
/// has settled every site is on: a newcomer's consumers wait behind the active
/// ones (single active consumer), and are withdrawn once the share is known.
/// Ends when the membership does.
pub async fn follow(
    mut view: watch::Receiver<membership::View>,
    me: String,
    switches: Vec<(SiteId, Arc<watch::Sender<bool>>)>,
) -> lapin::Result<()> {
    let sites: Vec<SiteId> = switches.iter().map(|(site, _)| site.clone()).collect();
    loop {
        let mine: BTreeSet<&SiteId> = match &*view.borrow_and_update() {
            None => sites.iter().collect(),
            Some(members) => assign::assign(&sites, members)
                .remove(&me)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        };
        for (site, switch) in &switches {
            let on = mine.contains(site);
            switch.send_if_modified(|was| std::mem::replace(was, on) != on);
        }
        metrics::sites_active(mine.len());
        if view.changed().await.is_err() {
            return Ok(());
        }
    }
}
