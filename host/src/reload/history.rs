//! The record of reload attempts: each with an id, its trigger, the
//! versions it went from and to, its result and a reason code, for the
//! admin API (`GET /reloads`) and the lifecycle events.

use std::collections::VecDeque;
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::config::Config;
use crate::plugin::PluginSet;

/// Attempts kept for `GET /reloads`.
const KEPT: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    /// The new set serves.
    Applied,
    /// The new set did not load; the running one stays.
    Refused,
    /// The new set served, failed its verification, and the one before it
    /// serves again.
    RolledBack,
}

impl Result {
    pub fn as_str(self) -> &'static str {
        match self {
            Result::Applied => "applied",
            Result::Refused => "refused",
            Result::RolledBack => "rolled_back",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: u64,
    pub at: SystemTime,
    pub trigger: &'static str,
    /// Content hashes of the set that served before, and of the new one
    /// (none when it did not load).
    pub old_version: String,
    pub new_version: Option<String>,
    pub result: Result,
    /// A stable code: `ok`, `config_invalid`, `plugin_invalid`,
    /// `failure_rate`.
    pub reason: &'static str,
    pub errors: Vec<String>,
}

impl Attempt {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "at": self.at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            "trigger": self.trigger,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "result": self.result.as_str(),
            "reason": self.reason,
            "errors": self.errors,
        })
    }
}

#[derive(Default)]
pub struct History {
    next_id: Mutex<u64>,
    attempts: Mutex<VecDeque<Attempt>>,
}

impl History {
    pub fn next_id(&self) -> u64 {
        let mut n = self.next_id.lock();
        *n += 1;
        *n
    }

    pub fn record(&self, attempt: Attempt) {
        let mut all = self.attempts.lock();
        if all.len() == KEPT {
            all.pop_front();
        }
        all.push_back(attempt);
    }

    /// Marks attempt `id` rolled back, with the reason why.
    pub fn rolled_back(&self, id: u64, reason: &'static str, detail: String) {
        if let Some(a) = self.attempts.lock().iter_mut().find(|a| a.id == id) {
            a.result = Result::RolledBack;
            a.reason = reason;
            a.errors = vec![detail];
        }
    }

    /// Newest first.
    pub fn all(&self) -> Vec<Attempt> {
        self.attempts.lock().iter().rev().cloned().collect()
    }

    pub fn last(&self) -> Option<Attempt> {
        self.attempts.lock().back().cloned()
    }

    pub fn last_refusal(&self) -> Option<Attempt> {
        self.attempts
            .lock()
            .iter()
            .rev()
            .find(|a| a.result == Result::Refused)
            .cloned()
    }
}

/// A set's version: a hash of its config's text, as parsed, and of each
/// plugin's code and settings, so the same files give the same version.
pub fn version(config: &Config, plugins: &PluginSet) -> String {
    let mut text = config.text_hash.clone().into_bytes();
    for p in &plugins.plugins {
        text.extend_from_slice(format!("\n{}={} {:?}", p.name, p.hash, p.settings).as_bytes());
    }
    let hash = crate::plugin::artifacts::content_hash(&text);
    hash[..16].to_string()
}
