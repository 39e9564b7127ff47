//! `kavro:plugin/config`: the plugin's own values from the host config.

use crate::plugin::bindings::kavro::plugin::config::Host;
use crate::plugin::state::HostState;

impl Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.grants.values.get(&key).cloned()
    }

    fn entries(&mut self) -> Vec<(String, String)> {
        self.grants
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
