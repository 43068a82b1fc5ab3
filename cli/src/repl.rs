//! `hb sql` without `-c`/`-f`: statements end with `;`, meta commands start
//! with `\` (`\dt`, `\d ENTITY`, `\explain SQL`, `\timing`, `\x`, `\copy`, `\q`).
//! On a terminal: line editing, history in `$HEAVENBASE_HOME/history`, and tab
//! completion of entity names, column names, meta commands and SQL keywords.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use heavenbase::{Home, Workspace};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use crate::{Failure, output, run_statement, split_statements, transfer, user_error};

const META: &[&str] = &["\\copy", "\\d", "\\dt", "\\explain", "\\q", "\\timing", "\\x"];
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "LEFT JOIN",
    "ON",
    "USING",
    "AND",
    "OR",
    "NOT",
    "INSERT INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE FROM",
    "CREATE TABLE",
    "DROP TABLE",
    "EXPLAIN",
    "COUNT(*)",
    "DISTINCT",
    "HAVING",
    "AS",
    "IS NULL",
    "IS NOT NULL",
];

/// What `\timing` and `\x` toggle.
pub struct Settings {
    pub format: output::Format,
    pub timing: bool,
    pub expanded: bool,
}

pub async fn run(ws: &Workspace, format: output::Format, timing: bool) -> Result<(), Failure> {
    let mut settings = Settings { format, timing, expanded: false };
    let mut input = Input::open(ws);
    let mut buffer = String::new();
    let prompt = |b: &str| if b.is_empty() { format!("{}=> ", ws.id()) } else { format!("{}-> ", ws.id()) };
    while let Some(line) = input.next(&prompt(&buffer)) {
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            match meta_command(ws, trimmed, &mut settings).await {
                Err(f) if f.code == 0 => return Ok(()),
                Err(f) => eprintln!("hb: {}", f.message),
                Ok(()) => {}
            }
        } else if !trimmed.is_empty() {
            buffer.push_str(&line);
            buffer.push('\n');
            if trimmed.ends_with(';') {
                run_all(ws, &buffer, &settings).await;
                buffer.clear();
            }
        }
    }
    run_all(ws, &buffer, &settings).await;
    Ok(())
}

/// Every statement of `text`; an error ends its statement, not the session.
async fn run_all(ws: &Workspace, text: &str, settings: &Settings) {
    let format = if settings.expanded { output::Format::Expanded } else { settings.format };
    for stmt in split_statements(text) {
        if let Err(f) = run_statement(ws, &stmt, format, settings.timing).await {
            eprintln!("hb: {}", f.message);
        }
    }
}

async fn meta_command(ws: &Workspace, cmd: &str, settings: &mut Settings) -> Result<(), Failure> {
    let (name, arg) = cmd.split_once(char::is_whitespace).map(|(a, b)| (a, b.trim())).unwrap_or((cmd, ""));
    match name {
        "\\q" => Err(Failure { code: 0, message: String::new() }),
        "\\timing" => {
            settings.timing = toggle(settings.timing, arg)?;
            println!("Timing is {}.", if settings.timing { "on" } else { "off" });
            Ok(())
        }
        "\\x" => {
            settings.expanded = toggle(settings.expanded, arg)?;
            println!("Expanded display is {}.", if settings.expanded { "on" } else { "off" });
            Ok(())
        }
        "\\copy" => copy(ws, arg).await,
        "\\dt" => {
            let batches = ws
                .sql("SELECT table_name AS entity FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
                .await?;
            output::print(&batches, settings.format)
        }
        "\\d" if !arg.is_empty() => {
            let def = ws.entity(arg)?;
            let plan = ws.placement(arg)?;
            println!(
                "Entity \"{}\"{}",
                def.entity_id,
                if def.desc.is_empty() { String::new() } else { format!(": {}", def.desc) }
            );
            println!("{:<20} {:<16} {:<9} {:<10} {}", "column", "type", "nullable", "backend", "description");
            for f in &def.fields {
                println!(
                    "{:<20} {:<16} {:<9} {:<10} {}",
                    f.name,
                    f.ty.pg_type(),
                    if f.required { "not null" } else { "" },
                    plan.home_of(&f.name).unwrap_or("-"),
                    f.desc
                );
            }
            Ok(())
        }
        "\\explain" if !arg.is_empty() => {
            let batches = ws.sql(&format!("EXPLAIN {}", arg.trim_end_matches(';'))).await?;
            output::print(&batches, settings.format)
        }
        other => Err(user_error(format!(
            "unknown meta command {other}; try \\dt, \\d ENTITY, \\explain SQL, \\timing, \\x, \\copy, \\q"
        ))),
    }
}

/// `\timing` / `\x` with no argument toggles; `on` / `off` sets.
fn toggle(current: bool, arg: &str) -> Result<bool, Failure> {
    match arg.to_lowercase().as_str() {
        "" => Ok(!current),
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(user_error(format!("unrecognized value \"{other}\": expected on or off"))),
    }
}

/// psql's `\copy ENTITY FROM 'file'` / `\copy ENTITY TO 'file'`: the file is on
/// this machine; its format is its extension's (csv, parquet, json, ndjson), as
/// `hb import` and `hb export` read them.
async fn copy(ws: &Workspace, arg: &str) -> Result<(), Failure> {
    let usage = || user_error("usage: \\copy ENTITY FROM 'file' | \\copy ENTITY TO 'file' (csv, parquet, json, ndjson)");
    let mut words = arg.splitn(3, char::is_whitespace);
    let (Some(entity), Some(direction), Some(file)) = (words.next(), words.next(), words.next()) else { return Err(usage()) };
    let file = PathBuf::from(file.trim().trim_end_matches(';').trim().trim_matches('\''));
    match direction.to_lowercase().as_str() {
        "from" => {
            let n = transfer::import(ws, &file, entity, None, None).await?;
            println!("COPY {n}");
        }
        "to" => {
            let n = transfer::export(ws, entity, &file).await?;
            println!("COPY {n}");
        }
        _ => return Err(usage()),
    }
    Ok(())
}

/// Lines of input: an editor with history and completion on a terminal,
/// plain lines from a pipe.
enum Input {
    Editor(Box<Editor<Completion, DefaultHistory>>, PathBuf),
    Piped(std::io::Lines<std::io::StdinLock<'static>>),
}

impl Input {
    fn open(ws: &Workspace) -> Input {
        if std::io::stdin().is_terminal()
            && let Ok(mut editor) = Editor::<Completion, DefaultHistory>::new()
        {
            editor.set_helper(Some(Completion { ws: ws.clone() }));
            let history = Home::from_env().map(|h| h.root().join("history")).unwrap_or_else(|_| PathBuf::from(".hb_history"));
            let _ = editor.load_history(&history);
            return Input::Editor(Box::new(editor), history);
        }
        Input::Piped(std::io::stdin().lock().lines())
    }

    fn next(&mut self, prompt: &str) -> Option<String> {
        match self {
            Input::Editor(editor, history) => match editor.readline(prompt) {
                Ok(line) => {
                    let _ = editor.add_history_entry(line.as_str());
                    let _ = editor.save_history(history);
                    Some(line)
                }
                Err(rustyline::error::ReadlineError::Interrupted) => Some(String::new()),
                Err(_) => None,
            },
            Input::Piped(lines) => lines.next().and_then(|l| l.ok()),
        }
    }
}

/// Tab completion from the workspace as it is now (entities registered
/// during the session are offered too).
pub struct Completion {
    ws: Workspace,
}

impl Completion {
    /// The word before `pos` and what it may become.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '\\' || c == '-')).map_or(0, |i| i + 1);
        let word = &before[start..];
        if word.is_empty() {
            return (start, Vec::new());
        }
        let lower = word.to_lowercase();
        let mut names: Vec<String> = Vec::new();
        if word.starts_with('\\') {
            names.extend(META.iter().map(|m| m.to_string()));
        } else {
            for entity in self.ws.entities() {
                let Ok(def) = self.ws.entity(&entity) else { continue };
                names.push(def.table_name());
                names.extend(def.fields.iter().map(|f| f.name.clone()));
            }
            names.extend(["sys_catalog", "sys_metaschema"].map(String::from));
            let upper = word.chars().next().is_some_and(char::is_uppercase);
            names.extend(KEYWORDS.iter().map(|k| if upper { k.to_string() } else { k.to_lowercase() }));
        }
        let mut found: Vec<String> = names.into_iter().filter(|n| n.to_lowercase().starts_with(&lower) && n != word).collect();
        found.sort();
        found.dedup();
        (start, found)
    }
}

impl Completer for Completion {
    type Candidate = Pair;
    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, found) = self.candidates(line, pos);
        Ok((start, found.into_iter().map(|n| Pair { display: n.clone(), replacement: n }).collect()))
    }
}

impl Hinter for Completion {
    type Hint = String;
}
impl Highlighter for Completion {}
impl Validator for Completion {}
impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use heavenbase::{Construction, EntityDef, FieldDef, LogicalType, Workspace};

    use super::Completion;

    #[tokio::test]
    async fn tab_completes_entities_columns_meta_commands_and_keywords() {
        let ws = Workspace::detached("complete", Construction::preset("debug")).await.unwrap();
        ws.register(
            EntityDef::new("product-review")
                .field(FieldDef::new("stars", LogicalType::Integer))
                .field(FieldDef::new("status", LogicalType::short_text())),
            false,
        )
        .await
        .unwrap();
        let c = Completion { ws: ws.clone() };
        assert_eq!(c.candidates("SELECT * FROM prod", 18), (14, vec!["product_review".to_string()]));
        assert_eq!(c.candidates("SELECT st", 9), (7, vec!["stars".to_string(), "status".to_string()]));
        assert_eq!(c.candidates("\\ti", 3), (0, vec!["\\timing".to_string()]));
        assert_eq!(c.candidates("sel", 3).1, vec!["select".to_string()]);
        assert_eq!(c.candidates("SEL", 3).1, vec!["SELECT".to_string()]);
        assert_eq!(c.candidates("SELECT ", 7), (7, Vec::<String>::new()));
        // An entity registered later is offered at once.
        ws.register(EntityDef::new("promo").field(FieldDef::new("code", LogicalType::short_text())), false).await.unwrap();
        assert_eq!(c.candidates("FROM pro", 8).1, vec!["product_review".to_string(), "promo".to_string()]);
    }
}
