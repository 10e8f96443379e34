//! `tessera new`, `tessera add` and `tessera templates list`: apps and components from the
//! templates built into the binary (crates/cli/templates), so no download is needed.
//!
//! A template is a folder with `template.toml` (its description) and `content/`: the
//! files of a new app, `spin.toml` among them. In file names and contents
//! `{{project-name}}` becomes the name given and `{{project-name | snake_case}}` its
//! snake_case form, as in Spin's templates. A template whose `template.toml` sets
//! `wasi_http_wit = "0.2.x"` also gets the WASI 0.2 WIT (templates/.wasi-http, labelled
//! with that version) in `wit/deps/`.

use anyhow::{Context as _, Result, bail};
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// Arguments of `tessera new`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera templates list\n  tessera new http-rust hello && cd hello && tessera up --build\n  tessera new -t spin-sdk-rust api -o services/api")]
pub struct NewArgs {
    /// The template (see `tessera templates list`), then the app's name (lowercase
    /// letters, digits and `-`); with -t, only the name.
    #[arg(value_name = "TEMPLATE NAME", num_args = 0..=2)]
    pub words: Vec<String>,
    /// The template, as a flag (as `spin new -t`).
    #[arg(short = 't', long = "template", value_name = "TEMPLATE")]
    pub template_flag: Option<String>,
    /// Where to create the app (default: a new directory NAME here).
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Accepted for Spin's scripts; the templates ask nothing.
    #[arg(long)]
    pub accept_defaults: bool,
}

/// Arguments of `tessera add`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera add http-rust api          # in the app's directory: adds api/ and its route /api/...\n  tessera add cron-rust nightly -f path/to/spin.toml")]
pub struct AddArgs {
    /// The template (see `tessera templates list`).
    #[arg(value_name = "TEMPLATE")]
    pub template: String,
    /// The component's name, also its directory and (for HTTP) its route `/NAME/...`.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The app to add it to: its spin.toml or directory.
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR", default_value = ".")]
    pub from: PathBuf,
}

/// Arguments of `tessera templates`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera templates list")]
pub struct TemplatesArgs {
    #[command(subcommand)]
    command: TemplatesCommand,
}

#[derive(clap::Subcommand)]
enum TemplatesCommand {
    /// List the templates built into this binary.
    List,
}

struct Template {
    id: &'static str,
    description: String,
    content: &'static Dir<'static>,
    /// The version label of the WASI 0.2 WIT the template builds against, if it needs it.
    wasi_http_wit: Option<String>,
}

fn templates() -> Vec<Template> {
    let mut out: Vec<Template> = TEMPLATES
        .dirs()
        .filter_map(|dir| {
            let id = dir.path().to_str()?;
            let meta: toml::Table = toml::from_str(dir.get_file(dir.path().join("template.toml"))?.contents_utf8()?).ok()?;
            let description = meta.get("description")?.as_str()?.to_string();
            let wasi_http_wit = meta.get("wasi_http_wit").and_then(|v| v.as_str()).map(str::to_string);
            Some(Template { id, description, content: dir.get_dir(dir.path().join("content"))?, wasi_http_wit })
        })
        .collect();
    out.sort_by_key(|t| t.id);
    out
}

fn find(id: &str) -> Result<Template> {
    let all = templates();
    let known: Vec<&str> = all.iter().map(|t| t.id).collect();
    let known = known.join(", ");
    all.into_iter().find(|t| t.id == id).with_context(|| format!("there is no template `{id}`\n  hint: use one of: {known} (tessera templates list)"))
}

pub fn list(_args: &TemplatesArgs) {
    let all = templates();
    let width = all.iter().map(|t| t.id.len()).max().unwrap_or(0);
    for t in all {
        println!("{:width$}  {}", t.id, t.description);
    }
}

fn check_name(name: &str) -> Result<()> {
    // The name becomes the component id too, so it follows Spin's rule for those.
    if !tessera_manifest::is_component_id(name) {
        bail!("`{name}` cannot name an app or component\n  hint: use lowercase letters, digits and `-`, starting with a letter, e.g. `my-app`");
    }
    Ok(())
}

fn fill(text: &str, name: &str) -> String {
    text.replace("{{project-name | snake_case}}", &name.replace('-', "_")).replace("{{project-name}}", name)
}

/// Writes the template's files under `into`, but those `skip` rejects.
fn write_files(dir: &Dir<'_>, root: &Path, into: &Path, name: &str, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    for file in dir.files() {
        let relative = file.path().strip_prefix(root).expect("inside the template");
        if skip(relative) {
            continue;
        }
        let target = into.join(fill(&relative.to_string_lossy(), name));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match file.contents_utf8() {
            Some(text) => std::fs::write(&target, fill(text, name))?,
            None => std::fs::write(&target, file.contents())?,
        }
        // The binary keeps no file modes: build scripts are made executable by name.
        if target.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    for sub in dir.dirs() {
        write_files(sub, root, into, name, skip)?;
    }
    Ok(())
}

/// The WASI 0.2 WIT, as the pinned wasip2 crate has it (0.2.12), into `into/wit/deps`,
/// relabelled `version` (componentize-js 0.23 exports 0.2.10).
fn write_wasi_wit(into: &Path, version: &str) -> Result<()> {
    let deps = TEMPLATES.get_dir(".wasi-http/deps").context("the binary lacks the WASI WIT")?;
    let target = into.join("wit/deps");
    std::fs::create_dir_all(&target)?;
    for file in deps.files() {
        let text = file.contents_utf8().context("WIT is text")?;
        let relabelled = text.replace("@0.2.12", &format!("@{version}")).replace("version = 0.2.12", &format!("version = {version}"));
        std::fs::write(target.join(file.path().file_name().expect("a file name")), relabelled)?;
    }
    Ok(())
}

/// All of a template's files under `into`, but those `skip` rejects.
fn write_template(template: &Template, into: &Path, name: &str, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    write_files(template.content, template.content.path(), into, name, skip)?;
    if let Some(version) = &template.wasi_http_wit {
        write_wasi_wit(into, version)?;
    }
    Ok(())
}

pub fn new(args: &NewArgs) -> Result<()> {
    let (id, name) = match (&args.template_flag, args.words.as_slice()) {
        (Some(id), [name]) | (None, [id, name]) => (id.as_str(), name.as_str()),
        (Some(id), []) | (None, [id]) => bail!("name the app: tessera new {id} NAME"),
        (None, []) => bail!("name a template and the app: tessera new TEMPLATE NAME (tessera templates list shows the templates)"),
        _ => bail!("too many arguments: tessera new TEMPLATE NAME, or tessera new -t TEMPLATE NAME"),
    };
    let template = find(id)?;
    check_name(name)?;
    let target = args.output.clone().unwrap_or_else(|| PathBuf::from(name));
    if target.exists() && std::fs::read_dir(&target).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists and is not empty\n  hint: choose another name, or -o DIR", target.display());
    }
    // Written beside the target and renamed, so a failure leaves nothing half made.
    let parent = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".tessera-new-").tempdir_in(parent)?;
    write_template(&template, staging.path(), name, &|_| false)?;
    if target.exists() {
        std::fs::remove_dir(&target)?;
    }
    std::fs::rename(staging.keep(), &target).with_context(|| format!("cannot create {}", target.display()))?;
    println!("Created app `{name}` from template {id} in {}", target.display());
    println!("  cd {} && tessera up --build", target.display());
    Ok(())
}

pub fn add(args: &AddArgs) -> Result<()> {
    let template = find(&args.template)?;
    check_name(&args.name)?;
    let name = args.name.as_str();
    let manifest_path = tessera_manifest::find_manifest(&args.from)?;
    let manifest = tessera_manifest::Manifest::from_file(&manifest_path)?;
    if manifest.components.contains_key(name) {
        bail!("the app already has a component `{name}`\n  hint: choose another name");
    }
    let app_dir = manifest.dir.clone();
    if app_dir.join(name).exists() {
        bail!("{} already exists\n  hint: choose another name", app_dir.join(name).display());
    }
    let text = std::fs::read_to_string(&manifest_path)?;
    let mut doc: toml_edit::DocumentMut = text.parse().with_context(|| format!("cannot edit {}", manifest_path.display()))?;
    let spin_toml = template.content.get_file(template.content.path().join("spin.toml")).and_then(|f| f.contents_utf8()).context("the template has no spin.toml")?;
    let snippet: toml_edit::DocumentMut = fill(spin_toml, name).parse().context("the template's spin.toml")?;
    merge_component(&mut doc, &snippet, name)?;

    // The files first, then the manifest: a failure before the manifest is written leaves
    // the app as it was (the folder is removed).
    let folder = app_dir.join(name);
    let written = write_template(&template, &folder, name, &|p| p == Path::new("spin.toml"));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&folder);
        return Err(e);
    }
    std::fs::write(&manifest_path, doc.to_string()).with_context(|| format!("cannot write {}", manifest_path.display()))?;
    println!("Added component `{name}` from template {} to {} (its files are in {name}/)", args.template, manifest_path.display());
    Ok(())
}

/// Adds the template's one component and its trigger to `doc`: its paths under `name/`,
/// an HTTP route under `/name/`, app-level trigger settings moved onto the trigger, and
/// the variables the app lacks.
fn merge_component(doc: &mut toml_edit::DocumentMut, snippet: &toml_edit::DocumentMut, name: &str) -> Result<()> {
    use toml_edit::{Item, value};
    let component = snippet.get("component").and_then(|c| c.get(name)).and_then(Item::as_table).context("the template has no component")?;
    let mut component = component.clone();
    if let Some(source) = component.get("source").and_then(Item::as_str).map(str::to_string) {
        component["source"] = value(format!("{name}/{source}"));
    }
    if let Some(build) = component.get_mut("build").and_then(Item::as_table_mut) {
        build["workdir"] = value(name);
    }
    let (kind, triggers) = snippet.get("trigger").and_then(Item::as_table).and_then(|t| t.iter().next()).context("the template has no trigger")?;
    let mut trigger = triggers.as_array_of_tables().and_then(|a| a.get(0)).context("the template's trigger")?.clone();
    if kind == "http" {
        trigger["route"] = value(format!("/{name}/..."));
    }
    let app_trigger = snippet.get("application").and_then(|a| a.get("trigger")).and_then(|t| t.get(kind)).and_then(Item::as_table);
    let app_has_trigger = doc.get("application").and_then(|a| a.get("trigger")).and_then(|t| t.get(kind)).is_some();
    if let (Some(settings), false) = (app_trigger, app_has_trigger) {
        for (key, item) in settings.iter() {
            trigger[key] = item.clone();
        }
    }
    if let Some(variables) = snippet.get("variables").and_then(Item::as_table) {
        let app_variables = doc.entry("variables").or_insert(toml_edit::table()).as_table_mut().context("`variables` is not a table")?;
        for (key, item) in variables.iter() {
            if !app_variables.contains_key(key) {
                app_variables[key] = item.clone();
            }
        }
    }
    let triggers = doc.entry("trigger").or_insert(toml_edit::table()).as_table_mut().context("`trigger` is not a table")?;
    triggers.set_implicit(true);
    let list = triggers.entry(kind).or_insert(Item::ArrayOfTables(toml_edit::ArrayOfTables::new()));
    list.as_array_of_tables_mut().context("the app's triggers of this kind are not [[trigger...]] tables")?.push(trigger);
    let components = doc.entry("component").or_insert(toml_edit::table()).as_table_mut().context("`component` is not a table")?;
    components.set_implicit(true);
    components.insert(name, Item::Table(component));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_has_a_manifest_readme_and_gitignore() {
        let all = templates();
        assert!(all.len() >= 8);
        for t in all {
            for file in ["spin.toml", "README.md", ".gitignore"] {
                assert!(t.content.get_file(t.content.path().join(file)).is_some(), "{}: {file}", t.id);
            }
            let manifest = fill(t.content.get_file(t.content.path().join("spin.toml")).unwrap().contents_utf8().unwrap(), "my-app");
            tessera_manifest::Manifest::parse(Path::new("spin.toml"), &manifest).unwrap_or_else(|e| panic!("{}: {e}", t.id));
        }
        assert!(check_name("Bad_Name").is_err() && check_name("1app").is_err() && check_name("ok-app2").is_ok());
    }
}
