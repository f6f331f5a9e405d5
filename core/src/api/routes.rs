//! Every route of the master's HTTP API, in one list: the master's router is built from it
//! (a route without a handler does not compile there), the client calls it, and
//! docs/openapi.yaml is tested against it.

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        }
    }
}

/// One operation: a method and a path template whose `{..}` segments are parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Route {
    pub verb: Verb,
    pub path: &'static str,
}

impl Route {
    /// The path with its `{..}` segments replaced by `args` in order, each percent-encoded
    /// (a name never becomes a second path segment or a query).
    pub fn path_with(&self, args: &[&str]) -> String {
        let mut out = String::with_capacity(self.path.len());
        let mut args = args.iter();
        for (i, segment) in self.path.split('/').enumerate() {
            if i > 0 {
                out.push('/');
            }
            if segment.starts_with('{') && segment.ends_with('}') {
                let arg = args
                    .next()
                    .unwrap_or_else(|| panic!("{}: a value for {segment}", self.path));
                out.push_str(&percent_encode(arg));
            } else {
                out.push_str(segment);
            }
        }
        debug_assert!(args.next().is_none(), "{}: too many values", self.path);
        out
    }

    /// Its parameters, in order (`{name}` -> `name`).
    pub fn params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

/// RFC 3986: everything but unreserved characters as `%XX`.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

macro_rules! routes {
    ($($(#[$doc:meta])* $name:ident = $verb:ident $path:literal;)*) => {
        $($(#[$doc])* pub const $name: Route = Route { verb: Verb::$verb, path: $path };)*
        /// Every route, in the order of this file.
        pub const ALL: &[Route] = &[$($name),*];
    };
}

routes! {
    LIST_SOURCES = Get "/api/v1/sources";
    CREATE_SOURCE = Post "/api/v1/sources";
    STOP_SOURCE = Delete "/api/v1/sources/{id}";
    UPDATE_SOURCE = Post "/api/v1/sources/{id}/update";
    TRANSFER_SOURCE = Post "/api/v1/sources/{id}/transfer";
    /// `{op}`: start, stop, pause, resume, purge.
    OPERATE_RELAY = Post "/api/v1/sources/{id}/relay/{op}";
    LIST_TASKS = Get "/api/v1/tasks";
    /// The last hour of every task's lag and rows per second, sampled every 10 s.
    TASK_HISTORY = Get "/api/v1/history";
    START_TASK = Post "/api/v1/tasks";
    CHECK_TASK = Post "/api/v1/tasks/check";
    GET_TASK = Get "/api/v1/tasks/{name}";
    /// Query `sources=a,b`: only those sources' subtasks stop.
    STOP_TASK = Delete "/api/v1/tasks/{name}";
    PAUSE_TASK = Post "/api/v1/tasks/{name}/pause";
    RESUME_TASK = Post "/api/v1/tasks/{name}/resume";
    UPDATE_TASK = Post "/api/v1/tasks/{name}/update";
    VERIFY_TASK = Post "/api/v1/tasks/{name}/verify";
    THROTTLE_TASK = Post "/api/v1/tasks/{name}/throttle";
    RESYNC_TASK = Post "/api/v1/tasks/{name}/resync";
    BINLOG_SKIP = Post "/api/v1/tasks/{name}/binlog-skip";
    BINLOG_REPLACE = Post "/api/v1/tasks/{name}/binlog-replace";
    BINLOG_INJECT = Post "/api/v1/tasks/{name}/binlog-inject";
    BINLOG_REVERT = Post "/api/v1/tasks/{name}/binlog-revert";
    BINLOG_LIST = Get "/api/v1/tasks/{name}/binlog";
    /// Query `source=`: which source's tracked schema (may be left out with one source).
    BINLOG_SCHEMA_LIST = Get "/api/v1/tasks/{name}/binlog-schema";
    BINLOG_SCHEMA_CHANGE = Post "/api/v1/tasks/{name}/binlog-schema";
    VALIDATION_STATUS = Get "/api/v1/tasks/{name}/validation";
    VALIDATION_START = Post "/api/v1/tasks/{name}/validation/start";
    VALIDATION_STOP = Post "/api/v1/tasks/{name}/validation/stop";
    /// Query `task=`: only that task's locks.
    SHARD_LOCKS = Get "/api/v1/shard-ddl-locks";
    SHARD_UNLOCK = Post "/api/v1/shard-ddl-locks/unlock";
    MEMBERS = Get "/api/v1/members";
    /// `{kind}`: master or worker.
    OFFLINE_MEMBER = Delete "/api/v1/members/{kind}/{name}";
    /// `{op}`: evict or cancel-evict.
    OPERATE_LEADER = Post "/api/v1/leader/{op}";
    EXPORT_CONFIG = Get "/api/v1/config";
    /// `{kind}`: task or source.
    GET_CONFIG = Get "/api/v1/config/{kind}/{name}";
    ETCD_ENDPOINTS = Get "/api/v1/cluster/etcd";
    METRICS = Get "/metrics";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_filled_in_order_and_encoded() {
        assert_eq!(
            OPERATE_RELAY.path_with(&["s1", "purge"]),
            "/api/v1/sources/s1/relay/purge"
        );
        assert_eq!(
            GET_TASK.path_with(&["a/b?c d"]),
            "/api/v1/tasks/a%2Fb%3Fc%20d"
        );
        assert_eq!(
            OFFLINE_MEMBER.params().collect::<Vec<_>>(),
            ["kind", "name"]
        );
    }

    #[test]
    fn no_route_is_listed_twice() {
        let set: std::collections::BTreeSet<_> = ALL.iter().collect();
        assert_eq!(set.len(), ALL.len());
    }
}
