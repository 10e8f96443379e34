//! The values of `spin up`'s flags that give an app data: `-e`, `--variable`,
//! `--key-value` and `--sqlite`, read exactly as Spin reads them.

use anyhow::{Context as _, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// `-e KEY=VALUE`.
pub fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// Every `--variable`: `KEY=VALUE`, `KEY=@FILE` (the file's text), `@FILE.json` or
/// `@FILE.toml` (a map of names to string values); a later one wins.
pub fn variables(given: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for text in given {
        if let Some(path) = text.strip_prefix('@') {
            let path = Path::new(path);
            let read = || std::fs::read_to_string(path).with_context(|| format!("--variable {text}: cannot read {}", path.display()));
            let map: BTreeMap<String, String> = match path.extension().and_then(|e| e.to_str()) {
                Some("json") => serde_json::from_str(&read()?).with_context(|| format!("--variable {text}: {} is not a JSON object of strings", path.display()))?,
                Some("toml") => toml::from_str(&read()?).with_context(|| format!("--variable {text}: {} is not a TOML table of strings", path.display()))?,
                _ => bail!("--variable {text}: variable files must end in .json or .toml"),
            };
            out.extend(map);
        } else if let Some((key, value)) = text.split_once('=') {
            let value = match value.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).with_context(|| format!("--variable {text}: cannot read {file}"))?,
                None => value.to_string(),
            };
            out.insert(key.to_string(), value);
        } else {
            bail!("--variable {text}: variables must be in the form 'key=value' or '@file'");
        }
    }
    Ok(out)
}

/// Every `--key-value [STORE:]KEY=VALUE` as (store, key, value). As in Spin, the text before
/// `=` is a key of the `default` store; `STORE:KEY` names another store when the app has
/// one called STORE (`stores`).
pub fn key_values(given: &[String], stores: &[String]) -> Result<Vec<(String, String, String)>> {
    given
        .iter()
        .map(|text| {
            let Some((key, value)) = text.split_once('=') else {
                bail!("--key-value {text}: write KEY=VALUE (or STORE:KEY=VALUE for a store other than `default`)");
            };
            let (store, key) = match key.split_once(':') {
                Some((store, rest)) if stores.iter().any(|s| s == store) => (store, rest),
                _ => ("default", key),
            };
            Ok((store.to_string(), key.to_string(), value.to_string()))
        })
        .collect()
}

/// Every `--sqlite STATEMENT` (run against `default`) or `@FILE[:DATABASE]` as (database, SQL).
pub fn sqlite(given: &[String]) -> Result<Vec<(String, String)>> {
    given
        .iter()
        .map(|text| {
            let Some(file) = text.strip_prefix('@') else {
                return Ok(("default".to_string(), text.clone()));
            };
            let (file, database) = match file.trim().split_once(':') {
                Some((f, _)) if f.trim().is_empty() => bail!("--sqlite {text}: the file path is empty"),
                Some((_, d)) if d.trim().is_empty() => bail!("--sqlite {text}: the database label is empty"),
                Some((f, d)) => (f.trim(), d.trim()),
                None if file.trim().is_empty() => bail!("--sqlite {text}: the file path is empty"),
                None => (file.trim(), "default"),
            };
            let sql = std::fs::read_to_string(file).with_context(|| format!("--sqlite {text}: cannot read {file}"))?;
            Ok((database.to_string(), sql))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_spin_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("v.json");
        std::fs::write(&json, r#"{"a": "1", "b": "2"}"#).unwrap();
        let text = dir.path().join("secret.txt");
        std::fs::write(&text, "s3cret").unwrap();
        let given = [format!("@{}", json.display()), "b=3".into(), format!("c=@{}", text.display())];
        let v = variables(&given).unwrap();
        assert_eq!((v["a"].as_str(), v["b"].as_str(), v["c"].as_str()), ("1", "3", "s3cret"));
        assert!(variables(&["nope".into()]).unwrap_err().to_string().contains("key=value"));
        assert!(variables(&["@x.yaml".into()]).unwrap_err().to_string().contains(".json or .toml"));

        let stores = ["cache".to_string()];
        let kv = key_values(&["user:1=alice".into(), "cache:k=v".into(), "x=a=b".into()], &stores).unwrap();
        assert_eq!(kv[0], ("default".into(), "user:1".into(), "alice".into()), "a colon is part of the key unless a store has that name");
        assert_eq!(kv[1], ("cache".into(), "k".into(), "v".into()));
        assert_eq!(kv[2], ("default".into(), "x".into(), "a=b".into()));

        let sql = dir.path().join("m.sql");
        std::fs::write(&sql, "CREATE TABLE t(x);").unwrap();
        let s = sqlite(&["SELECT 1".into(), format!("@{}", sql.display()), format!("@{}:other", sql.display())]).unwrap();
        assert_eq!(s[0], ("default".into(), "SELECT 1".into()));
        assert_eq!((s[1].0.as_str(), s[2].0.as_str()), ("default", "other"));
        assert!(sqlite(&["@:db".into()]).unwrap_err().to_string().contains("file path is empty"));
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
    }
}
