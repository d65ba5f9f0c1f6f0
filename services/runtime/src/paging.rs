//! Pagination of list RPCs (AIP-158): `page_size` with a default and a cap, and `page_token`,
//! which is opaque to callers (an offset into the answer, given by this service).

use crate::error::ApiError;

/// Where a page starts and how many items it holds at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    /// The offset of the first item.
    pub from: usize,
    /// The most items.
    pub size: usize,
}

impl Page {
    /// Reads `page_size` (0 for `default`, capped at `max`, never negative) and `page_token`
    /// (empty for the first page).
    pub fn read(
        page_size: i32,
        page_token: &str,
        default: usize,
        max: usize,
    ) -> Result<Self, ApiError> {
        let size = match page_size {
            n if n < 0 => return Err(ApiError::invalid("page_size", format!("{n} is negative"))),
            0 => default,
            n => (n as usize).min(max),
        };
        let from = if page_token.is_empty() {
            0
        } else {
            page_token
                .parse()
                .map_err(|_| ApiError::invalid("page_token", "is not a token this service gave"))?
        };
        Ok(Self { from, size })
    }

    /// This page of `items`, and the token of the next page (empty at the end).
    pub fn of<T>(self, mut items: Vec<T>) -> (Vec<T>, String) {
        let mut page = items.split_off(self.from.min(items.len()));
        let next = if page.len() > self.size {
            token(Some(self.from + self.size))
        } else {
            String::new()
        };
        page.truncate(self.size);
        (page, next)
    }
}

/// The token of the page that starts at `next` (empty when there is none).
pub fn token(next: Option<usize>) -> String {
    next.map(|n| n.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_item_once() {
        let items: Vec<u32> = (0..25).collect();
        let mut seen = Vec::new();
        let mut next = String::new();
        loop {
            let page = Page::read(10, &next, 100, 1000).unwrap_or(Page { from: 0, size: 0 });
            let (chunk, token) = page.of(items.clone());
            seen.extend(chunk);
            if token.is_empty() {
                break;
            }
            next = token;
        }
        assert_eq!(seen, items);
        assert!(Page::read(-1, "", 100, 1000).is_err());
        assert!(Page::read(10, "x", 100, 1000).is_err());
    }
}
