//! Profiles: which tools a client sees (docs/reference.md §9 names the
//! reference's; `readonly` is ours, for hosts that must not change data).

use std::fmt;
use std::str::FromStr;

/// Every tool, in the order `tools/list` gives them.
pub(crate) const ALL_TOOLS: &[&str] = &[
    "list_entities",
    "describe_entity",
    "define_entity",
    "get",
    "get_many",
    "exists",
    "count",
    "upsert",
    "upsert_many",
    "set",
    "set_many",
    "delete",
    "delete_many",
    "query",
    "explain",
    "sql",
    "audit",
    "repair",
];

/// Schema reads, row reads and queries; `sql` runs read-only statements.
const READONLY_TOOLS: &[&str] =
    &["list_entities", "describe_entity", "get", "get_many", "exists", "count", "query", "explain", "sql"];

/// The reference's agent set, plus `sql` (read-only).
const AGENT_TOOLS: &[&str] =
    &["define_entity", "list_entities", "describe_entity", "upsert", "get", "set", "count", "query", "explain", "sql"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Schema, read and query tools; nothing that writes.
    ReadOnly,
    /// The reference's agent profile: define, read, write single rows, query.
    #[default]
    Agent,
    /// Every tool; `sql` may write; `audit` and `repair`.
    Full,
}

impl Profile {
    pub const ALL: [Profile; 3] = [Profile::ReadOnly, Profile::Agent, Profile::Full];

    pub fn name(self) -> &'static str {
        match self {
            Profile::ReadOnly => "readonly",
            Profile::Agent => "agent",
            Profile::Full => "full",
        }
    }

    /// The tool names this profile offers, in `tools/list` order.
    pub fn tool_names(self) -> Vec<&'static str> {
        let set: &[&str] = match self {
            Profile::ReadOnly => READONLY_TOOLS,
            Profile::Agent => AGENT_TOOLS,
            Profile::Full => ALL_TOOLS,
        };
        ALL_TOOLS.iter().copied().filter(|t| set.contains(t)).collect()
    }

    pub fn offers(self, tool: &str) -> bool {
        self.tool_names().contains(&tool)
    }

    /// What a call of a tool this profile does not offer is told.
    pub fn unknown_tool(self, tool: &str) -> String {
        format!("unknown tool '{tool}' (profile '{}' offers: {})", self.name(), self.tool_names().join(", "))
    }

    /// Whether the `sql` tool may run statements that change data or schema.
    pub fn sql_writes(self) -> bool {
        self == Profile::Full
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown MCP profile '{s}'; profiles: {}", Profile::ALL.map(Profile::name).join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_offer_their_tool_sets() {
        assert_eq!(Profile::Full.tool_names().len(), 18);
        assert_eq!(
            Profile::Agent.tool_names(),
            ["list_entities", "describe_entity", "define_entity", "get", "count", "upsert", "set", "query", "explain", "sql"]
        );
        assert!(Profile::ReadOnly.tool_names().iter().all(|t| !["define_entity", "upsert", "set", "delete"].contains(t)));
        assert!(!Profile::Agent.sql_writes() && Profile::Full.sql_writes());
        assert_eq!("AGENT".parse::<Profile>(), Ok(Profile::Agent));
        assert!("root".parse::<Profile>().unwrap_err().contains("readonly, agent, full"));
    }
}
