//! `kavro:plugin/cache`: a prime plugin chooses the request's cache key or
//! bypasses the cache; any phase may purge. The choice is recorded in the
//! view and read by the pipeline after the prime call.

use std::sync::Arc;

use wasmtime::component::Linker;

use super::{denied, view_of, CapCtx, Granting, HasView, HostView, Unit};
use crate::cache::{ResponseCache, MAX_KEY};
use crate::config::Config;
use crate::plugin::bindings::kavro::plugin::cache::{self as wit, Host};
use crate::plugin::bindings::types::HostError;

pub struct Cache;

impl Unit for Cache {
    const NAME: &'static str = "cache";
    /// The response cache, which the pipeline serves from too.
    type Shared = Arc<ResponseCache>;
    type View = CacheView;

    fn shared(config: &Config) -> Arc<ResponseCache> {
        let mut cache = ResponseCache::new(config.cache_max_bytes, config.cache_max_object_bytes);
        cache.fleet = crate::cluster::Cluster::of(config);
        Arc::new(cache)
    }

    fn view(_: &Granting<'_>, cache: &Arc<ResponseCache>) -> CacheView {
        CacheView {
            cache: Some(cache.clone()),
            choice: None,
        }
    }

    fn add_to_linker<T: HostView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
        wit::add_to_linker::<T, HasView<Cache>>(linker, view_of::<T, Cache>)
    }
}

#[derive(Default, Clone)]
pub struct CacheView {
    /// The cache, if granted.
    cache: Option<Arc<ResponseCache>>,
    /// What the current prime call chose.
    pub choice: Option<CacheChoice>,
}

/// What a prime plugin decided about the cache for its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChoice {
    Key(String),
    Bypass,
}

impl CapCtx<'_, CacheView> {
    fn cache(&self) -> Result<&ResponseCache, HostError> {
        self.view
            .cache
            .as_deref()
            .ok_or_else(|| denied::<Cache>(self.call))
    }

    fn choose(&mut self, choice: CacheChoice) -> Result<(), HostError> {
        self.cache()?;
        if !self.call.access.cache_choice {
            return Err(HostError::Invalid(
                "the cache key and bypass can only be chosen in prime".into(),
            ));
        }
        self.view.choice = Some(choice);
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

impl Host for CapCtx<'_, CacheView> {
    fn set_key(&mut self, key: String) -> Result<(), HostError> {
        check_key(&key)?;
        self.choose(CacheChoice::Key(key))
    }
    fn bypass(&mut self) -> Result<(), HostError> {
        self.choose(CacheChoice::Bypass)
    }
    fn purge(&mut self, key: String) -> Result<u64, HostError> {
        check_key(&key)?;
        Ok(self.cache()?.purge_fleet(&key, false))
    }
    fn purge_prefix(&mut self, prefix: String) -> Result<u64, HostError> {
        check_key(&prefix)?;
        Ok(self.cache()?.purge_fleet(&prefix, true))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{call, granting, is_denied, view};
    use super::super::Capability;
    use super::*;

    #[test]
    fn denied_unless_granted_and_chosen_only_in_prime() {
        let mut call = call();
        let mut no = view::<Cache>(&granting(&[]));
        let mut ctx = CapCtx {
            view: &mut no,
            call: &mut call,
        };
        assert!(is_denied(ctx.purge("k".into())));
        assert!(is_denied(ctx.bypass()));
        let mut yes = view::<Cache>(&granting(&[Capability::Cache]));
        let mut ctx = CapCtx {
            view: &mut yes,
            call: &mut call,
        };
        assert!(matches!(ctx.bypass(), Err(HostError::Invalid(_))));
        ctx.call.access.cache_choice = true;
        ctx.set_key("page".into()).unwrap();
        assert_eq!(ctx.view.choice, Some(CacheChoice::Key("page".into())));
        assert!(ctx.set_key(String::new()).is_err());
        assert_eq!(ctx.purge("page".into()).unwrap(), 0);
    }
}
