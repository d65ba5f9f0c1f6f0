//! Name search that ignores case, diacritics and Unicode normal form.
//!
//! "nguyen xuan ky", "NGUYỄN XUÂN KÝ" and a decomposed (NFD) "Nguyễn" all find "Nguyễn Xuân Ký";
//! "đ" matches "d". Folding is NFC normalisation (`unicode-normalization`), then
//! transliteration to ASCII (`deunicode`, which also maps đ to d), then lowercase.

use crate::HashMap;

use unicode_normalization::UnicodeNormalization;

/// Folds a name for comparison: NFC, ASCII transliteration, lowercase, single spaces.
pub fn fold(text: &str) -> String {
    // Names recorded by the domain are already NFC: skip the copy when a quick check says so.
    let ascii = if unicode_normalization::is_nfc(text) {
        deunicode::deunicode(text).to_lowercase()
    } else {
        deunicode::deunicode(&text.nfc().collect::<String>()).to_lowercase()
    };
    ascii.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Exact comparison form: NFC, lowercase, single spaces (diacritics kept).
pub fn exact(text: &str) -> String {
    let nfc = if unicode_normalization::is_nfc(text) {
        text.to_lowercase()
    } else {
        text.nfc().collect::<String>().to_lowercase()
    };
    nfc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An inverted index over the spellings of names: each distinct spelling is folded once, and
/// lists every key that carried it. Names repeat a lot (a few family, middle and given names make
/// most Vietnamese names), so the index holds far fewer spellings than keys, and recording a name
/// already seen is a single hash lookup.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NameIndex<K> {
    spellings: Vec<Spelling<K>>,
    /// A spelling as recorded to its number.
    #[serde(skip)]
    by_spelling: HashMap<Box<str>, u32>,
    /// Folded words to the spellings containing them, in increasing order.
    tokens: HashMap<Box<str>, Vec<u32>>,
    /// Whole folded names to their spellings: the exact and folded matches of a query, found
    /// without scanning every name that merely shares a word with it.
    whole: HashMap<Box<str>, Vec<u32>>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Spelling<K> {
    name: Box<str>,
    /// The keys that carried it, in the order they were recorded.
    keys: Vec<K>,
}

impl<K> Default for NameIndex<K> {
    fn default() -> Self {
        Self {
            spellings: Vec::new(),
            by_spelling: HashMap::default(),
            tokens: HashMap::default(),
            whole: HashMap::default(),
        }
    }
}

impl<K> registry_domain::state::SizedLike for NameIndex<K> {
    fn sized_like(other: &Self) -> Self {
        use registry_domain::state::SizedLike as S;
        Self {
            spellings: S::sized_like(&other.spellings),
            by_spelling: S::sized_like(&other.by_spelling),
            tokens: S::sized_like(&other.tokens),
            whole: S::sized_like(&other.whole),
        }
    }
}

/// How well a name matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MatchKind {
    /// The same name, diacritics included (case and normal form aside).
    Exact,
    /// The same name once diacritics are ignored.
    Folded,
    /// Every word of the query appears in the name.
    Words,
}

impl<K: Copy + Eq> NameIndex<K> {
    /// Adds a name of `key` (a key can have several: renames, aliases) and returns the number
    /// of its spelling, for [`NameIndex::spelling`].
    pub fn add(&mut self, key: K, name: &str) -> u32 {
        if let Some(&id) = self.by_spelling.get(name) {
            // A key may carry a spelling twice (a correction back to it): the search skips
            // the repeats, so only the common case of a repeat in a row is kept out here.
            let keys = &mut self.spellings[id as usize].keys;
            if keys.last() != Some(&key) {
                keys.push(key);
            }
            return id;
        }
        let id = self.spellings.len() as u32;
        self.spellings.push(Spelling {
            name: name.into(),
            keys: vec![key],
        });
        self.by_spelling.insert(name.into(), id);
        self.index(id);
        id
    }

    fn index(&mut self, id: u32) {
        let folded = fold(&self.spellings[id as usize].name);
        let mut seen: Vec<&str> = Vec::new();
        for token in folded.split(' ') {
            if !seen.contains(&token) {
                seen.push(token);
                self.tokens.entry(token.into()).or_default().push(id);
            }
        }
        self.whole
            .entry(folded.into_boxed_str())
            .or_default()
            .push(id);
    }

    /// A spelling by its number.
    pub fn spelling(&self, id: u32) -> &str {
        &self.spellings[id as usize].name
    }

    /// Rebuilds the lookup of spellings (not saved in snapshots: it is derived).
    pub(crate) fn restore(&mut self) {
        self.by_spelling = crate::lookup(self.spellings.iter().map(|s| s.name.clone()));
    }

    /// The keys whose names match every word of `query` and that `keep` accepts, each key
    /// once: exact spellings first, then names equal once folded, then names that contain
    /// every word; within each, spelling by spelling in the order the spellings were first
    /// recorded, and the keys of a spelling in the order they were recorded. Stops as soon as
    /// `limit` keys are found.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        keep: impl Fn(K) -> bool,
    ) -> Vec<(K, String, MatchKind)> {
        let folded = fold(query);
        let exact_query = exact(query);
        let mut found: Vec<(K, String, MatchKind)> = Vec::new();
        let take = |spellings: &mut dyn Iterator<Item = (MatchKind, u32)>,
                    found: &mut Vec<(K, String, MatchKind)>| {
            for (kind, id) in spellings {
                let spelling = &self.spellings[id as usize];
                for &key in &spelling.keys {
                    if found.len() >= limit {
                        return;
                    }
                    if keep(key) && !found.iter().any(|(k, _, _)| *k == key) {
                        found.push((key, spelling.name.to_string(), kind));
                    }
                }
            }
        };
        // Exact and folded matches: the whole folded name is the query.
        let whole = self.whole.get(folded.as_str()).map_or(&[][..], |w| &w[..]);
        let mut ranked: Vec<(MatchKind, u32)> = whole
            .iter()
            .map(|&id| {
                let kind = if exact(&self.spellings[id as usize].name) == exact_query {
                    MatchKind::Exact
                } else {
                    MatchKind::Folded
                };
                (kind, id)
            })
            .collect();
        ranked.sort_by_key(|(kind, _)| *kind);
        take(&mut ranked.into_iter(), &mut found);
        if found.len() >= limit {
            return found;
        }
        // Then names containing every word: intersect the token lists, smallest first.
        let mut lists: Vec<&Vec<u32>> = Vec::new();
        for token in folded.split(' ').filter(|t| !t.is_empty()) {
            match self.tokens.get(token) {
                Some(list) => lists.push(list),
                None => return found,
            }
        }
        lists.sort_by_key(|l| l.len());
        let Some((first, rest)) = lists.split_first() else {
            return found;
        };
        let mut words = first
            .iter()
            .filter(|id| whole.binary_search(id).is_err())
            .filter(|id| rest.iter().all(|l| l.binary_search(id).is_ok()))
            .map(|&id| (MatchKind::Words, id));
        take(&mut words, &mut found);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diacritics_case_and_normal_form_do_not_matter() {
        let mut index = NameIndex::default();
        index.add(1u32, "Nguyễn Xuân Ký");
        index.add(2, "Nguyễn Thị Kim Phượng");
        index.add(3, "Đặng Văn Đông");
        index.add(4, "Nguyen Xuan Ky");
        let all = |_| true;
        let hits = index.search("nguyen xuan ky", 10, all);
        assert_eq!(
            hits.iter().map(|h| h.0).collect::<Vec<_>>(),
            [4, 1],
            "the exact (undecorated) spelling first"
        );
        let nfd = "Nguye\u{302}\u{303}n Xua\u{302}n Ky\u{301}";
        let hits = index.search(nfd, 10, all);
        assert_eq!((hits[0].0, hits[0].2), (1, MatchKind::Exact));
        assert_eq!(index.search("dang van dong", 10, all)[0].0, 3);
        assert_eq!(index.search("ĐÔNG", 10, all)[0].0, 3);
        assert_eq!(index.search("kim phuong", 10, all)[0].0, 2);
        assert!(index.search("phuong xyz", 10, all).is_empty());
        assert_eq!(fold("  Nguyễn   Thị "), "nguyen thi");
    }
}
