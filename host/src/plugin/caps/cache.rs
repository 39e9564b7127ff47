//! `kavro:plugin/cache`: a prime plugin chooses the request's cache key or
//! bypasses the cache; any phase may purge. The choice is recorded in the
//! store and read by the pipeline after the prime call.

use super::denied;
use crate::cache::{ResponseCache, MAX_KEY};
use crate::plugin::bindings::kavro::plugin::cache::Host;
use crate::plugin::bindings::types::HostError;
use crate::plugin::state::HostState;

/// What a prime plugin decided about the cache for its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChoice {
    Key(String),
    Bypass,
}

impl HostState {
    fn cache(&self) -> Result<&ResponseCache, HostError> {
        self.grants
            .cache
            .as_deref()
            .ok_or_else(|| denied(&self.grants.plugin, "cache"))
    }

    fn choose(&mut self, choice: CacheChoice) -> Result<(), HostError> {
        self.cache()?;
        if !self.access.cache_choice {
            return Err(HostError::Invalid(
                "the cache key and bypass can only be chosen in prime".into(),
            ));
        }
        self.cache_choice = Some(choice);
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), HostError> {
    if key.is_empty() || key.len() > MAX_KEY || key.chars().any(char::is_control) {
        return Err(HostError::Invalid(format!(
            "a cache key is 1 to {MAX_KEY} bytes without control characters"
        )));
    }
    Ok(())
}

impl Host for HostState {
    fn set_key(&mut self, key: String) -> Result<(), HostError> {
        check_key(&key)?;
        self.choose(CacheChoice::Key(key))
    }
    fn bypass(&mut self) -> Result<(), HostError> {
        self.choose(CacheChoice::Bypass)
    }
    fn purge(&mut self, key: String) -> Result<u64, HostError> {
        check_key(&key)?;
        Ok(self.cache()?.purge(&key))
    }
    fn purge_prefix(&mut self, prefix: String) -> Result<u64, HostError> {
        check_key(&prefix)?;
        Ok(self.cache()?.purge_prefix(&prefix))
    }
}
