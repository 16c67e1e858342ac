//! Which sites each worker consumes: a pure function of the configured sites
//! and the live members, so every worker that sees the same members computes
//! the same answer without asking anyone.
//!
//! Rendezvous hashing with bounded loads: every (site, member) pair has a
//! weight, a hash of both names; sites are placed one after another in the
//! order of their ids, each on the member of highest weight that still has
//! room, and a member has room for ceil(S/N) sites. So no member ever gets more
//! than ceil(S/N), and when a member joins or leaves, most sites keep theirs.
//!
//! The hash is written out here (FNV-1a, then a 64-bit finaliser), not taken
//! from the standard library, whose hasher may change between Rust versions:
//! workers of two releases side by side during a rolling upgrade must agree.

use std::collections::BTreeMap;

use relay_contract::SiteId;

/// Each member's sites, for `sites` shared out over `members`. Members are
/// named by their announced ids; a member with no site is still listed.
pub fn assign<'a>(sites: &'a [SiteId], members: &[String]) -> BTreeMap<String, Vec<&'a SiteId>> {
    let mut shares: BTreeMap<String, Vec<&SiteId>> =
        members.iter().map(|m| (m.clone(), Vec::new())).collect();
    if shares.is_empty() {
        return shares;
    }
    let room = sites.len().div_ceil(shares.len());
    let mut ordered: Vec<&SiteId> = sites.iter().collect();
    ordered.sort();
    ordered.dedup();
    for site in ordered {
        let best = shares
            .iter()
            .filter(|(_, taken)| taken.len() < room)
            .max_by_key(|(member, _)| weight(site.as_str(), member))
            .map(|(member, _)| member.clone());
        if let Some(member) = best
            && let Some(taken) = shares.get_mut(&member)
        {
            taken.push(site);
        }
    }
    shares
}

/// The weight of `site` on `member`: higher wins.
fn weight(site: &str, member: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in site.bytes().chain([0]).chain(member.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // FNV alone mixes the last bytes poorly; finish like splitmix64.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(n: usize) -> Vec<SiteId> {
        (0..n)
            .map(|i| format!("lms-{i}").parse().unwrap_or_else(|e| panic!("{e}")))
            .collect()
    }

    fn members(names: &[&str]) -> Vec<String> {
        names.iter().map(|m| (*m).to_owned()).collect()
    }

    fn owner<'a>(shares: &'a BTreeMap<String, Vec<&SiteId>>, site: &SiteId) -> Option<&'a str> {
        shares
            .iter()
            .find(|(_, taken)| taken.contains(&site))
            .map(|(m, _)| m.as_str())
    }

    #[test]
    fn every_site_has_one_owner_and_no_member_more_than_its_share() {
        for (s, n) in [(12, 3), (1_000, 3), (7, 2), (5, 8), (1, 1), (1_000, 7)] {
            let all = sites(s);
            let names: Vec<String> = (0..n).map(|i| format!("worker-{i}")).collect();
            let shares = assign(&all, &names);
            let owned: usize = shares.values().map(Vec::len).sum();
            assert_eq!(owned, s, "{s} sites over {n}");
            let most = shares.values().map(Vec::len).max().unwrap_or(0);
            assert!(
                most <= s.div_ceil(n),
                "{s} sites over {n}: one member has {most}"
            );
        }
    }

    #[test]
    fn every_worker_computes_the_same_answer_whatever_order_it_lists_things_in() {
        let all = sites(50);
        let mut reversed = all.clone();
        reversed.reverse();
        let a = assign(&all, &members(&["a", "b", "c"]));
        let b = assign(&reversed, &members(&["c", "a", "b"]));
        assert_eq!(a, b);
    }

    #[test]
    fn a_member_leaving_moves_its_sites_and_few_others() {
        let all = sites(300);
        let before = assign(&all, &members(&["a", "b", "c", "d"]));
        let after = assign(&all, &members(&["a", "b", "c"]));
        let moved = all
            .iter()
            .filter(|s| owner(&before, s) != Some("d") && owner(&before, s) != owner(&after, s))
            .count();
        // Pure rendezvous hashing would move none of them; the load bound
        // moves some. Far fewer than reshuffling (which moves about 2/3).
        assert!(moved < 75, "{moved} of the 225 sites not on d moved");
    }

    #[test]
    fn no_members_no_shares() {
        assert!(assign(&sites(3), &[]).is_empty());
    }

    #[test]
    fn the_weights_are_fixed_across_releases() {
        // Changing these breaks a rolling upgrade: old and new workers would
        // disagree on who owns what.
        assert_eq!(
            weight("lms-prod", "worker-a"),
            weight("lms-prod", "worker-a")
        );
        assert_ne!(
            weight("lms-prod", "worker-a"),
            weight("lms-prod", "worker-b")
        );
        assert_eq!(weight("a", "b"), 0xeb38_c838_c62d_597e);
    }
}
