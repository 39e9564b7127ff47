//! The kv capability's data in Redis, for a `[cluster]`: the same keys,
//! expiry and atomic increments as the in-process store, shared by every
//! host. Keys are `<prefix>kv:<plugin>:<key>`, so plugins stay apart.

use std::time::Duration;

use super::{CallError, Cluster};
use crate::plugin::bindings::types::HostError;

/// Increments, setting the expiry only on the key's creation, in one step.
const INCREMENT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and ARGV[2] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
";

fn host_error(e: CallError) -> HostError {
    match e {
        CallError::Unavailable(why) => HostError::Unavailable(why),
        CallError::Refused(why) if why.contains("not an integer") => {
            HostError::Invalid("the value is not a counter".into())
        }
        CallError::Refused(why) if why.contains("overflow") => {
            HostError::Invalid("the counter would overflow".into())
        }
        CallError::Refused(why) => HostError::Invalid(why),
    }
}

impl Cluster {
    fn kv_key(&self, plugin: &str, key: &str) -> String {
        format!("{}kv:{plugin}:{key}", self.prefix)
    }

    pub async fn kv_get(
        &self,
        plugin: &str,
        key: &str,
        budget: Duration,
    ) -> Result<Option<Vec<u8>>, HostError> {
        let k = self.kv_key(plugin, key);
        self.call(budget, |mut c| async move {
            redis::cmd("GET")
                .arg(k)
                .query_async::<Option<Vec<u8>>>(&mut c)
                .await
        })
        .await
        .map_err(host_error)
    }

    pub async fn kv_set(
        &self,
        plugin: &str,
        key: &str,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        budget: Duration,
    ) -> Result<(), HostError> {
        let k = self.kv_key(plugin, key);
        if ttl_ms == Some(0) {
            // Expired as it is written: what the in-process store does.
            return self.kv_delete(plugin, key, budget).await.map(|_| ());
        }
        self.call(budget, |mut c| async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(k).arg(value);
            if let Some(ms) = ttl_ms {
                cmd.arg("PX").arg(ms);
            }
            cmd.query_async::<()>(&mut c).await
        })
        .await
        .map_err(host_error)
    }

    /// Whether a live entry was deleted.
    pub async fn kv_delete(
        &self,
        plugin: &str,
        key: &str,
        budget: Duration,
    ) -> Result<bool, HostError> {
        let k = self.kv_key(plugin, key);
        self.call(budget, |mut c| async move {
            redis::cmd("DEL").arg(k).query_async::<i64>(&mut c).await
        })
        .await
        .map(|n| n > 0)
        .map_err(host_error)
    }

    pub async fn kv_increment(
        &self,
        plugin: &str,
        key: &str,
        delta: i64,
        ttl_ms: Option<u64>,
        budget: Duration,
    ) -> Result<i64, HostError> {
        let k = self.kv_key(plugin, key);
        let ttl = ttl_ms.map_or(String::new(), |ms| ms.max(1).to_string());
        self.call(budget, |mut c| async move {
            redis::Script::new(INCREMENT)
                .key(k)
                .arg(delta)
                .arg(ttl)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map_err(host_error)
    }
}
