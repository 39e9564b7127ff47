//! How `plugin try` shows what a phase changed: header edits, KV writes,
//! bodies, each as indented lines under the phase.

use std::collections::BTreeMap;

use http::HeaderMap;

/// A value for one line of the report: quoted, control characters escaped,
/// cut at `max` characters.
pub fn shown(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text.chars().take(max).collect::<String>();
    out = out.escape_debug().to_string();
    if text.chars().count() > max {
        format!("\"{out}\"… ({} bytes)", bytes.len())
    } else {
        format!("\"{out}\"")
    }
}

fn values(map: &HeaderMap, name: &http::HeaderName) -> Vec<String> {
    map.get_all(name)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect()
}

/// What changed from `before` to `after`, one line per header set or removed.
pub fn header_changes(what: &str, before: &HeaderMap, after: &HeaderMap) -> Vec<String> {
    let mut lines = Vec::new();
    for name in after.keys() {
        let now = values(after, name);
        if values(before, name) != now {
            lines.push(format!("{what} header set      {name}: {}", now.join(", ")));
        }
    }
    for name in before.keys() {
        if !after.contains_key(name) {
            lines.push(format!("{what} header removed  {name}"));
        }
    }
    lines
}

/// What changed in a plugin's key-value entries.
pub fn kv_changes(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for (k, v) in after {
        if before.get(k) != Some(v) {
            lines.push(format!("kv set   {k} = {}", shown(v, 80)));
        }
    }
    for k in before.keys() {
        if !after.contains_key(k) {
            lines.push(format!("kv deleted {k}"));
        }
    }
    lines
}

/// A failure's detail as indented lines (a traceback keeps its lines).
pub fn detail_lines(detail: &str) -> Vec<String> {
    detail.lines().map(|l| format!("  {l}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_listed_once_each() {
        let mut before = HeaderMap::new();
        before.insert("a", "1".parse().unwrap());
        before.insert("gone", "x".parse().unwrap());
        let mut after = before.clone();
        after.remove("gone");
        after.append("a", "2".parse().unwrap());
        after.insert("new", "y".parse().unwrap());
        assert_eq!(
            header_changes("request", &before, &after),
            [
                "request header set      a: 1, 2",
                "request header set      new: y",
                "request header removed  gone"
            ]
        );
        let mut kv = BTreeMap::new();
        kv.insert("hits".to_string(), b"1".to_vec());
        assert_eq!(kv_changes(&BTreeMap::new(), &kv), ["kv set   hits = \"1\""]);
        assert_eq!(kv_changes(&kv, &BTreeMap::new()), ["kv deleted hits"]);
        assert_eq!(shown(b"line\nbreak", 4), "\"line\"… (10 bytes)");
    }
}
