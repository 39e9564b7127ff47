//! What a backend answers to a hub event, and what `POST /publish`
//! carries: a JSON object whose `+`, `-` and `@` keys name groups (a
//! string or a list of strings) and whose other keys are the message.

use serde_json::{Map, Value};

/// A parsed answer. An empty body is an answer that does nothing.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    /// `+`: groups the client joins (names starting with `/`).
    pub join: Vec<String>,
    /// `-`: groups the client leaves.
    pub leave: Vec<String>,
    /// `@`: where the message goes; `None`: back to the client.
    pub to: Option<Vec<String>>,
    /// The object without `+`, `-` and `@`, as JSON text; `None` when
    /// nothing is left.
    pub message: Option<String>,
}

pub fn parse(body: &[u8]) -> Result<Answer, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::default());
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the answer is not a JSON object".into());
    };
    let join = names(&mut object, "+")?.unwrap_or_default();
    if let Some(bad) = join.iter().find(|g| !g.starts_with('/')) {
        return Err(format!(
            "`+` names `{bad}`: groups a client joins start with `/` (other names are client ids)"
        ));
    }
    let leave = names(&mut object, "-")?.unwrap_or_default();
    let to = names(&mut object, "@")?;
    let message = (!object.is_empty()).then(|| Value::Object(object).to_string());
    Ok(Answer {
        join,
        leave,
        to,
        message,
    })
}

/// The group names under `key`, taken out of the object.
fn names(object: &mut Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, String> {
    let Some(value) = object.remove(key) else {
        return Ok(None);
    };
    let bad = || format!("`{key}` is not a group name or a list of them");
    let names = match value {
        Value::String(s) => vec![s],
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(bad()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    if names.iter().any(String::is_empty) {
        return Err(format!("`{key}` names an empty group"));
    }
    Ok(Some(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_the_rest_as_the_message() {
        let a =
            parse(br#"{"+": ["/a", "/b"], "-": "/c", "@": "/a", "text": "hi", "n": 2}"#).unwrap();
        assert_eq!(a.join, ["/a", "/b"]);
        assert_eq!(a.leave, ["/c"]);
        assert_eq!(a.to.as_deref(), Some(&["/a".to_string()][..]));
        let message: Value = serde_json::from_str(a.message.as_deref().unwrap()).unwrap();
        assert_eq!(message, serde_json::json!({"text": "hi", "n": 2}));
        assert_eq!(parse(b"").unwrap(), Answer::default());
        assert_eq!(parse(b" \n").unwrap(), Answer::default());
        assert_eq!(parse(br#"{"+": "/x"}"#).unwrap().message, None);
    }

    #[test]
    fn what_is_refused() {
        for bad in [
            &b"not json"[..],
            b"[1, 2]",
            br#"{"@": 3}"#,
            br#"{"+": ["/a", 1]}"#,
            br#"{"+": "lobby"}"#,
            br#"{"@": ""}"#,
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
