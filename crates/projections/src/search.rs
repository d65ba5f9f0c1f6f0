//! Name search that ignores case, diacritics and Unicode normal form.
//!
//! "nguyen xuan ky", "NGUYỄN XUÂN KÝ" and a decomposed (NFD) "Nguyễn" all find "Nguyễn Xuân Ký";
//! "đ" matches "d". Folding is NFC normalisation (`unicode-normalization`), then
//! transliteration to ASCII (`deunicode`, which also maps đ to d), then lowercase.

use crate::HashMap;
use std::sync::Arc;

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

/// An inverted index from folded name tokens to the ids carrying those names.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct NameIndex<K> {
    tokens: HashMap<String, Vec<u32>>,
    /// Each name with its exact and folded comparison forms, computed once.
    names: Vec<Entry<K>>,
    /// Whole folded names to their entries: the exact and folded matches of a query, found
    /// without scanning every name that merely shares a word with it.
    whole: HashMap<Box<str>, Vec<u32>>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Entry<K> {
    key: K,
    /// Shared with the read model that holds the name.
    name: Arc<str>,
}

impl<K> Default for NameIndex<K> {
    fn default() -> Self {
        Self {
            tokens: HashMap::default(),
            names: Vec::new(),
            whole: HashMap::default(),
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

impl<K: Copy + Eq + std::hash::Hash> NameIndex<K> {
    /// Adds a name of `key` (a person can have several: renames, aliases).
    pub fn add(&mut self, key: K, name: Arc<str>) {
        let entry = self.names.len() as u32;
        let folded = fold(&name);
        let mut seen: Vec<&str> = Vec::new();
        for token in folded.split(' ') {
            if !seen.contains(&token) {
                seen.push(token);
                match self.tokens.get_mut(token) {
                    Some(list) => list.push(entry),
                    None => {
                        self.tokens.insert(token.to_owned(), vec![entry]);
                    }
                }
            }
        }
        self.names.push(Entry { key, name });
        match self.whole.get_mut(folded.as_str()) {
            Some(list) => list.push(entry),
            None => {
                self.whole.insert(folded.into_boxed_str(), vec![entry]);
            }
        }
    }

    /// The keys whose names match every word of `query`, each key once: exact spellings first,
    /// then names equal once folded, then names that contain every word, in the order they
    /// were recorded. Stops as soon as `limit` keys are found.
    pub fn search(&self, query: &str, limit: usize) -> Vec<(K, String, MatchKind)> {
        let folded = fold(query);
        let exact_query = exact(query);
        let mut found: Vec<(K, String, MatchKind)> = Vec::new();
        let mut seen: Vec<K> = Vec::new();
        // Exact and folded matches: the whole folded name is the query.
        if let Some(entries) = self.whole.get(folded.as_str()) {
            let mut whole: Vec<(MatchKind, u32)> = entries
                .iter()
                .map(|e| {
                    let kind = if exact(&self.names[*e as usize].name) == exact_query {
                        MatchKind::Exact
                    } else {
                        MatchKind::Folded
                    };
                    (kind, *e)
                })
                .collect();
            whole.sort_by_key(|(kind, _)| *kind);
            for (kind, entry) in whole {
                let e = &self.names[entry as usize];
                if !seen.contains(&e.key) {
                    seen.push(e.key);
                    found.push((e.key, e.name.to_string(), kind));
                }
            }
        }
        if found.len() >= limit {
            found.truncate(limit);
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
        for entry in first
            .iter()
            .filter(|e| rest.iter().all(|l| l.binary_search(e).is_ok()))
        {
            let e = &self.names[*entry as usize];
            if !seen.contains(&e.key) {
                seen.push(e.key);
                found.push((e.key, e.name.to_string(), MatchKind::Words));
                if found.len() >= limit {
                    break;
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diacritics_case_and_normal_form_do_not_matter() {
        let mut index = NameIndex::default();
        index.add(1u32, "Nguyễn Xuân Ký".into());
        index.add(2, "Nguyễn Thị Kim Phượng".into());
        index.add(3, "Đặng Văn Đông".into());
        index.add(4, "Nguyen Xuan Ky".into());
        let hits = index.search("nguyen xuan ky", 10);
        assert_eq!(
            hits.iter().map(|h| h.0).collect::<Vec<_>>(),
            [4, 1],
            "the exact (undecorated) spelling first"
        );
        let nfd = "Nguye\u{302}\u{303}n Xua\u{302}n Ky\u{301}";
        let hits = index.search(nfd, 10);
        assert_eq!((hits[0].0, hits[0].2), (1, MatchKind::Exact));
        assert_eq!(index.search("dang van dong", 10)[0].0, 3);
        assert_eq!(index.search("ĐÔNG", 10)[0].0, 3);
        assert_eq!(index.search("kim phuong", 10)[0].0, 2);
        assert!(index.search("phuong xyz", 10).is_empty());
        assert_eq!(fold("  Nguyễn   Thị "), "nguyen thi");
    }
}
