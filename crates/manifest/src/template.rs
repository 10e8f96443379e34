//! `{{ name }}` templates in component `variables` and `allowed_outbound_hosts`.

use std::collections::BTreeMap;

/// One piece of a template: literal text or a reference to an application variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is.
    Literal(String),
    /// `{{ name }}`: the value of the application variable `name`.
    Variable(String),
}

/// A parsed template such as `https://{{ api_host }}:8080`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

/// The template as written (variable references normalised to `{{ name }}`).
impl std::fmt::Display for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(text)?,
                Part::Variable(name) => write!(f, "{{{{ {name} }}}}")?,
            }
        }
        Ok(())
    }
}

impl Template {
    /// Text taken as it is, braces included (values an embedder gives, not a manifest).
    pub fn literal(text: &str) -> Self {
        Self { parts: vec![Part::Literal(text.to_string())] }
    }

    /// Parses `text`, checking that every `{{ ... }}` holds a valid variable name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in `{text}`: close it with `}}}}`"))?;
            let name = after[..end].trim();
            if !is_variable_name(name) {
                return Err(format!(
                    "`{{{{ {name} }}}}` in `{text}` is not a valid variable name: use lower_snake_case"
                ));
            }
            parts.push(Part::Variable(name.to_string()));
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// The variable names the template refers to.
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Variable(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills in the template; `values` must hold every referenced variable.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Variable(name) => out.push_str(
                    values
                        .get(name)
                        .ok_or_else(|| format!("variable `{name}` has no value"))?,
                ),
            }
        }
        Ok(out)
    }
}

/// Spin's rule for variable names: lower_snake_case, starting with a letter.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && !name.ends_with('_')
        && !name.contains("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_literals_and_variables() {
        let t = Template::parse("https://{{ host }}:{{port}}/").unwrap();
        assert_eq!(t.variables().collect::<Vec<_>>(), ["host", "port"]);
        let values = BTreeMap::from([
            ("host".to_string(), "example.com".to_string()),
            ("port".to_string(), "8080".to_string()),
        ]);
        assert_eq!(t.render(&values).unwrap(), "https://example.com:8080/");
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("{{ host").unwrap_err().contains("unclosed"));
        assert!(Template::parse("{{ Host }}").unwrap_err().contains("lower_snake_case"));
        assert!(Template::parse("{{ }}").is_err());
    }
}
