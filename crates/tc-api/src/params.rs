//! Reading an action's parameters from the request's JSON object (POST) or its flattened query
//! string (GET, `List.0=a&List.1=b`), with messages that name the parameter and what it takes.
//! Every parameter an action does not read is refused as `UnknownParameter`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// An action's parameters; each getter marks its parameter as known.
#[derive(Debug, Default)]
pub struct Params {
    values: Map<String, Value>,
    read: BTreeSet<String>,
}

impl Params {
    pub fn new(values: Map<String, Value>) -> Params {
        Params { values, read: BTreeSet::new() }
    }

    fn take(&mut self, name: &str) -> Option<&Value> {
        self.read.insert(name.to_owned());
        self.values.get(name).filter(|value| !value.is_null())
    }

    /// A string parameter (numbers are refused: the SDK sends strings as strings).
    pub fn string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(ApiError::InvalidParameter(format!("{name} must be a string, not {}", kind(other)))),
        }
    }

    pub fn required_string(&mut self, name: &str) -> Result<String, ApiError> {
        match self.string(name)? {
            Some(text) if !text.is_empty() => Ok(text),
            Some(_) => Err(ApiError::MissingParameter(format!("{name} must not be empty"))),
            None => Err(ApiError::MissingParameter(format!("the parameter {name} is required"))),
        }
    }

    /// A non-empty string, or `None` when absent or empty.
    pub fn filter_string(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        Ok(self.string(name)?.filter(|text| !text.is_empty()))
    }

    /// An integer: a JSON integer, or a string of digits (GET query strings carry only text).
    pub fn integer(&mut self, name: &str) -> Result<Option<i64>, ApiError> {
        let not_integer = |shown: String| ApiError::InvalidParameter(format!("{name} must be an integer, not {shown}"));
        match self.take(name) {
            None => Ok(None),
            Some(Value::Number(number)) => number.as_i64().map(Some).ok_or_else(|| not_integer(number.to_string())),
            Some(Value::String(text)) => {
                text.trim().parse::<i64>().map(Some).map_err(|_| not_integer(format!("{text:?}")))
            }
            Some(other) => Err(not_integer(kind(other).to_owned())),
        }
    }

    /// An integer within `min..=max`.
    pub fn integer_in(&mut self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.integer(name)? {
            Some(value) if !(min..=max).contains(&value) => {
                Err(ApiError::InvalidParameterValue(format!("{name} must be between {min} and {max}, not {value}")))
            }
            other => Ok(other),
        }
    }

    pub fn required_integer_in(&mut self, name: &str, min: i64, max: i64) -> Result<i64, ApiError> {
        self.integer_in(name, min, max)?
            .ok_or_else(|| ApiError::MissingParameter(format!("the parameter {name} is required")))
    }

    /// A boolean: JSON `true`/`false`, or the text `true`/`false`.
    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.take(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) if text == "true" || text == "false" => Ok(Some(text == "true")),
            Some(other) => {
                Err(ApiError::InvalidParameter(format!("{name} must be true or false, not {}", kind(other))))
            }
        }
    }

    /// A list of strings.
    pub fn string_list(&mut self, name: &str) -> Result<Vec<String>, ApiError> {
        match self.take(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| match item {
                    Value::String(text) => Ok(text.clone()),
                    other => {
                        Err(ApiError::InvalidParameter(format!("{name}.{index} must be a string, not {}", kind(other))))
                    }
                })
                .collect(),
            Some(other) => {
                Err(ApiError::InvalidParameter(format!("{name} must be a list of strings, not {}", kind(other))))
            }
        }
    }

    /// A parameter as JSON, for structured values (lists of objects, maps).
    pub fn json(&mut self, name: &str) -> Option<Value> {
        self.take(name).cloned()
    }

    /// Refuses every parameter that was not read.
    pub fn finish(self) -> Result<(), ApiError> {
        let unknown: Vec<&str> =
            self.values.keys().filter(|name| !self.read.contains(name.as_str())).map(String::as_str).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(ApiError::UnknownParameter(format!("this action takes no parameter {}", unknown.join(", "))))
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Turns `A.0=x&A.1=y&B=1&C.0.Name=n` into `{"A": ["x", "y"], "B": "1", "C": [{"Name": "n"}]}`.
pub fn unflatten_query(query: &str) -> Result<Map<String, Value>, ApiError> {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key.is_empty() {
            continue;
        }
        if key.len() > 200 {
            return Err(ApiError::InvalidParameter("a query parameter name is longer than 200 characters".into()));
        }
        insert(&mut root, &key, Value::String(value.into_owned()), &key)?;
    }
    match root {
        Value::Object(map) => Ok(map),
        _ => Ok(Map::new()),
    }
}

fn insert(node: &mut Value, path: &str, value: Value, full: &str) -> Result<(), ApiError> {
    let clash = || ApiError::InvalidParameter(format!("the query parameter {full} clashes with another one"));
    let (head, rest) = match path.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    if head.is_empty() {
        return Err(ApiError::InvalidParameter(format!("the query parameter name {full:?} has an empty part")));
    }
    let slot: &mut Value = match head.parse::<usize>() {
        Ok(index) => {
            if node.is_null() {
                *node = Value::Array(Vec::new());
            }
            let Value::Array(items) = node else { return Err(clash()) };
            if index > items.len() || index >= 1000 {
                return Err(ApiError::InvalidParameter(format!(
                    "the list indexes of {full} must count up from 0 without gaps"
                )));
            }
            if index == items.len() {
                items.push(Value::Null);
            }
            &mut items[index]
        }
        Err(_) => {
            if node.is_null() {
                *node = Value::Object(Map::new());
            }
            let Value::Object(map) = node else { return Err(clash()) };
            map.entry(head.to_owned()).or_insert(Value::Null)
        }
    };
    match rest {
        None if slot.is_null() => {
            *slot = value;
            Ok(())
        }
        None => Err(clash()),
        Some(rest) => insert(slot, rest, value, full),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_strings_unflatten_into_lists_and_objects() {
        let map = unflatten_query("A.0=x&A.1=y%20z&B=1&C.0.Name=n&C.0.Values.0=v").unwrap();
        assert_eq!(Value::Object(map), json!({"A": ["x", "y z"], "B": "1", "C": [{"Name": "n", "Values": ["v"]}]}));
        assert!(unflatten_query("A.1=x").unwrap_err().to_string().contains("without gaps"));
        assert!(unflatten_query("A=1&A.0=2").unwrap_err().to_string().contains("clashes"));
        assert!(unflatten_query("A=1&A=2").unwrap_err().to_string().contains("clashes"));
    }

    #[test]
    fn getters_accept_text_numbers_and_name_what_is_wrong() {
        let mut params = Params::new(
            json!({"Limit": "10", "Offset": 5, "Month": 202611, "Flag": "true", "Ids": ["a", 1]})
                .as_object()
                .cloned()
                .unwrap(),
        );
        assert_eq!(params.integer("Limit").unwrap(), Some(10));
        assert_eq!(params.integer_in("Offset", 0, 3).unwrap_err().code(), "InvalidParameterValue");
        assert_eq!(params.string("Month").unwrap_err().to_string(), "Month must be a string, not a number");
        assert_eq!(params.boolean("Flag").unwrap(), Some(true));
        assert_eq!(params.string_list("Ids").unwrap_err().to_string(), "Ids.1 must be a string, not a number");
        assert_eq!(params.required_string("Missing").unwrap_err().code(), "MissingParameter");
        params.finish().unwrap();
        let mut extra = Params::new(json!({"Known": "x", "Typo": 1}).as_object().cloned().unwrap());
        extra.string("Known").unwrap();
        let error = extra.finish().unwrap_err();
        assert_eq!(
            (error.code(), error.to_string().as_str()),
            ("UnknownParameter", "this action takes no parameter Typo")
        );
    }
}
