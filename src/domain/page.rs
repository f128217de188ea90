//! Pagination of list routes.

// Values from requests, settings and receivers flow through this arithmetic: it must not wrap.
#![warn(clippy::arithmetic_side_effects)]

use super::FieldError;

pub const MAX_PER_PAGE: u32 = 100;

/// A validated page request: `page` from 1, `per_page` 1..=100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl Page {
    pub fn parse(page: Option<i64>, per_page: Option<i64>, default_per_page: u32) -> Result<Self, FieldError> {
        let page = page.unwrap_or(1);
        if !(1..=1_000_000).contains(&page) {
            return Err(FieldError::new("page", "must be a whole number from 1"));
        }
        let per_page = per_page.unwrap_or(default_per_page as i64);
        if !(1..=MAX_PER_PAGE as i64).contains(&per_page) {
            return Err(FieldError::new("per_page", format!("must be between 1 and {MAX_PER_PAGE}")));
        }
        Ok(Self { page: page as u32, per_page: per_page as u32 })
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page.saturating_sub(1)).saturating_mul(i64::from(self.per_page))
    }

    pub fn limit(&self) -> i64 {
        self.per_page as i64
    }
}
