//! Decisions on blob state, without I/O: what to write where something differs, how ETags
//! compare, and what a blob already at a copy's destination means. Shared by the export (its
//! copies and tags in place) and the model store (the `latest` alias, the index).

use std::collections::{BTreeMap, HashMap};

use azure_storage_blob::models::CopyStatus;

use crate::naming::stored::SOURCE_ETAG_KEY;

/// `current` with `ours` laid over it, or `None` when every one of ours is already there
/// (nothing to write). Tags and metadata replace the whole set on write, and other tools may
/// have entries of their own, so theirs are kept.
pub fn merged(
    current: &HashMap<String, String>,
    ours: &BTreeMap<String, String>,
) -> Option<HashMap<String, String>> {
    if ours.iter().all(|(k, v)| current.get(k) == Some(v)) {
        return None;
    }
    let mut all = current.clone();
    all.extend(ours.iter().map(|(k, v)| (k.clone(), v.clone())));
    Some(all)
}

/// ETags compared as the service means them: a listing gives `0x8D…`, a header `"0x8D…"`.
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// An ETag in the quoted form headers use, the form a copy records.
pub fn quoted_etag(etag: &str) -> String {
    format!("\"{}\"", etag.trim_matches('"'))
}

/// What a blob already at the destination is, for a source with `source_etag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// A finished copy of this very source: nothing to do.
    Done,
    /// A copy of this source still running (a large model): wait for it.
    Pending,
    /// A copy of this source that failed or was aborted: copy it again over it.
    Broken,
    /// A blob of another source (a re-exported backup), or of none we recorded: copy over it,
    /// where the source may replace what is there.
    Other,
}

pub fn judge_existing(
    metadata: &HashMap<String, String>,
    copy_status: Option<&CopyStatus>,
    source_etag: &str,
) -> Existing {
    let same_source = metadata
        .get(SOURCE_ETAG_KEY)
        .is_some_and(|recorded| same_etag(recorded, source_etag));
    match (same_source, copy_status) {
        (true, None | Some(CopyStatus::Success)) => Existing::Done,
        (true, Some(CopyStatus::Pending)) => Existing::Pending,
        (true, Some(_)) => Existing::Broken,
        (false, _) => Existing::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn writes_only_what_differs_and_keeps_foreign_entries() {
        let ours = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(merged(&map(&[("a", "1"), ("x", "y")]), &ours), None);
        assert_eq!(
            merged(&map(&[("a", "0"), ("x", "y")]), &ours),
            Some(map(&[("a", "1"), ("x", "y")]))
        );
        assert_eq!(merged(&map(&[]), &ours), Some(map(&[("a", "1")])));
    }

    #[test]
    fn etags_compare_with_or_without_quotes() {
        assert!(same_etag("0x1", "\"0x1\""));
        assert!(!same_etag("0x1", "0x2"));
        assert_eq!(quoted_etag("0x1"), "\"0x1\"");
        assert_eq!(quoted_etag("\"0x1\""), "\"0x1\"");
    }

    #[test]
    fn an_existing_copy_is_judged_by_the_source_it_records() {
        let recorded = map(&[(SOURCE_ETAG_KEY, "\"0x1\"")]);
        assert_eq!(judge_existing(&recorded, None, "0x1"), Existing::Done);
        assert_eq!(
            judge_existing(&recorded, Some(&CopyStatus::Success), "0x1"),
            Existing::Done
        );
        assert_eq!(
            judge_existing(&recorded, Some(&CopyStatus::Pending), "0x1"),
            Existing::Pending
        );
        assert_eq!(
            judge_existing(&recorded, Some(&CopyStatus::Failed), "0x1"),
            Existing::Broken
        );
        assert_eq!(
            judge_existing(&recorded, Some(&CopyStatus::Aborted), "0x1"),
            Existing::Broken
        );
        assert_eq!(judge_existing(&recorded, None, "0x2"), Existing::Other);
        assert_eq!(
            judge_existing(&recorded, Some(&CopyStatus::Failed), "0x2"),
            Existing::Other
        );
        assert_eq!(judge_existing(&map(&[]), None, "0x1"), Existing::Other);
    }
}
