//! The config as one graph, written in TOML or JSON: a JSON config has the
//! same keys and shapes as the TOML one (a `null` is a key left out), and
//! its errors name the JSON pointer of what is wrong. `compile` prints the
//! canonical JSON of a config: keys sorted, defaults written out, relative
//! paths resolved against the config file's folder, the same bytes on every
//! run.

use std::path::Path;

use super::diagnostic::{Diagnostic, Diagnostics};
use super::model::ConfigFile;

/// The graph's schema version; a config may say `schema = N` and one from
/// a newer version is refused.
pub const SCHEMA: u32 = 1;

/// Whether `file` is written in JSON (by its extension).
pub fn is_json(file: &str) -> bool {
    Path::new(file)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

fn diagnostic(file: &str, pointer: String, message: String, hint: &str) -> Diagnostics {
    Diagnostics(vec![Diagnostic {
        file: file.to_string(),
        position: None,
        field: pointer,
        message,
        hint: hint.to_string(),
    }])
}

/// A JSON config as the TOML text of the same table, for the one reader of
/// both; what JSON can say and TOML cannot (a null in a list, a top level
/// that is not an object) is refused here.
pub fn toml_from_json(file: &str, text: &str) -> Result<String, Diagnostics> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: file.to_string(),
            position: Some((e.line(), e.column())),
            field: String::new(),
            message: e.to_string(),
            hint: "this is not valid JSON; check quotes, commas and brackets".into(),
        }])
    })?;
    if !value.is_object() {
        return Err(diagnostic(
            file,
            "/".into(),
            "a config is a JSON object".into(),
            "write { \"routes\": [...], ... } at the top",
        ));
    }
    let table = to_toml(file, "", value)?.expect("an object is never null");
    toml::to_string(&table).map_err(|e| {
        diagnostic(
            file,
            "/".into(),
            format!("cannot be read as a config: {e}"),
            "check the value's type against the docs (docs/config.md)",
        )
    })
}

/// One JSON value as TOML; `None` for a null (a key left out).
fn to_toml(
    file: &str,
    pointer: &str,
    value: serde_json::Value,
) -> Result<Option<toml::Value>, Diagnostics> {
    use serde_json::Value as J;
    Ok(Some(match value {
        J::Null => return Ok(None),
        J::Bool(b) => toml::Value::Boolean(b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => toml::Value::Integer(i),
            // `5.0` (what many JSON writers make of 5) is the integer 5.
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                toml::Value::Integer(f as i64)
            }
            (None, Some(f)) if n.is_f64() => toml::Value::Float(f),
            _ => {
                return Err(diagnostic(
                    file,
                    pointer.to_string(),
                    format!("{n} is out of range"),
                    "write a number that fits in 64 bits",
                ))
            }
        },
        J::String(s) => toml::Value::String(s),
        J::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let at = format!("{pointer}/{i}");
                match to_toml(file, &at, item)? {
                    Some(v) => out.push(v),
                    None => {
                        return Err(diagnostic(
                            file,
                            at,
                            "null in a list".into(),
                            "remove it: lists hold values",
                        ))
                    }
                }
            }
            toml::Value::Array(out)
        }
        J::Object(map) => {
            let mut out = toml::map::Map::new();
            for (k, v) in map {
                let at = format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1"));
                if let Some(v) = to_toml(file, &at, v)? {
                    out.insert(k, v);
                }
            }
            toml::Value::Table(out)
        }
    }))
}

/// A field path as the checks write it (`routes[2].cache.ttl`) as a JSON
/// pointer (`/routes/2/cache/ttl`).
pub fn pointer(field: &str) -> String {
    if field.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(field.len() + 2);
    for part in field.split('.') {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in indices.split(['[', ']']).filter(|s| !s.is_empty()) {
            out.push('/');
            out.push_str(index);
        }
    }
    out
}

/// The canonical JSON of a config that has been checked: `raw` is its
/// table, read from `file`.
pub fn canonical(file: &str, mut raw: ConfigFile) -> String {
    resolve_paths(&mut raw, &super::base_dir(file));
    raw.schema = SCHEMA;
    let mut value = serde_json::to_value(&raw).expect("a config is always JSON");
    drop_nulls(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("JSON");
    text.push('\n');
    text
}

/// A value left out is the same as one not written: not in the graph.
fn drop_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// Every path the host reads relative to the config file's folder, made
/// absolute (as the host would open it), so the graph reads the same from
/// anywhere.
fn resolve_paths(raw: &mut ConfigFile, base: &Path) {
    // Joined and cleaned as text, symlinks kept: a graph names
    // `/etc/letsencrypt/live/x/fullchain.pem`, not what it points to today.
    let absolute = |p: &mut toml::Spanned<String>| {
        let clean = lexical(&base.join(p.get_ref()));
        *p = toml::Spanned::new(p.span(), clean.display().to_string());
    };
    let server_routes = raw.servers.iter_mut().flat_map(|s| s.routes.iter_mut());
    for route in raw.routes.iter_mut().chain(server_routes) {
        if let Some(s) = &mut route.static_files {
            absolute(&mut s.root);
        }
        if let Some(f) = &mut route.fastcgi {
            absolute(&mut f.root);
        }
    }
    for plugin in &mut raw.plugins {
        plugin.dirs.values_mut().for_each(absolute);
    }
    for upstream in raw.upstreams.values_mut() {
        let files = [
            &mut upstream.ca,
            &mut upstream.client_cert,
            &mut upstream.client_key,
        ];
        files.into_iter().flatten().for_each(absolute);
    }
    if let Some(tls) = &mut raw.tls {
        for c in &mut tls.certificates {
            absolute(&mut c.cert);
            absolute(&mut c.key);
        }
        if let Some(acme) = &mut tls.acme {
            if let Some(ca) = &mut acme.directory_ca {
                absolute(ca);
            }
            acme.state_dir = lexical(&base.join(&acme.state_dir)).display().to_string();
        }
    }
}

/// `path` made absolute (from the working folder) with `.` and `..`
/// worked out as text.
fn lexical(path: &Path) -> std::path::PathBuf {
    use std::path::{Component, PathBuf};
    let path = match path.is_absolute() {
        true => path.to_path_buf(),
        false => std::env::current_dir().unwrap_or_default().join(path),
    };
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_become_json_pointers() {
        assert_eq!(pointer("routes[2].cache.ttl"), "/routes/2/cache/ttl");
        assert_eq!(pointer("server.listen[0]"), "/server/listen/0");
        assert_eq!(pointer("plugins[1].paths[0]"), "/plugins/1/paths/0");
        assert_eq!(pointer(""), "");
    }

    #[test]
    fn json_reads_as_the_same_table_and_nulls_are_keys_left_out() {
        let toml = toml_from_json(
            "x.json",
            r#"{"routes": [{"path": "/*", "respond": {"body": "ok", "status": 200}, "cache": null}]}"#,
        )
        .unwrap();
        let back: toml::Value = toml::from_str(&toml).unwrap();
        let route = &back["routes"][0];
        assert_eq!(route["respond"]["body"].as_str(), Some("ok"));
        assert!(route.get("cache").is_none());
        let e = toml_from_json("x.json", r#"{"routes": [null]}"#).unwrap_err();
        assert_eq!(e.0[0].field, "/routes/0");
        let e = toml_from_json("x.json", "[1]").unwrap_err();
        assert_eq!(e.0[0].field, "/");
        let e = toml_from_json("x.json", "{\"routes\": [").unwrap_err();
        assert!(e.0[0].position.is_some());
    }
}
