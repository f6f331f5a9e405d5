//! A task's rules for one source, built from its task file (and the source's own filters):
//! which tables, which events, where rows go, which rows. `use crate::rules::TaskRules` and
//! call them on a `TaskConfig`.

use super::{EventFilter, ExpressionFilters, OnlineDdlRules, Router, TableFilter};
use crate::config::{FilterRule, SourceConfig, TaskConfig};

pub trait TaskRules {
    /// The event filter of `source`: the task's `filters` it names, then the source's own.
    fn event_filter_of(&self, source: &SourceConfig) -> EventFilter;
    /// The block-allow list of `source_id`, with the online schema change tools' tables.
    fn table_filter_of(&self, source_id: &str) -> TableFilter;
    /// The routes of `source_id`.
    fn router_of(&self, source_id: &str) -> Router;
    /// The expression filters of `source_id`.
    fn expression_filters_of(&self, source_id: &str) -> ExpressionFilters;
}

impl TaskRules for TaskConfig {
    /// The event filter of one source: the rules its instance names, then the source file's
    /// own `filters` (TiDB DM's source-level rules) for table patterns the task has no rule
    /// for: the task's rule wins, as in DM.
    fn event_filter_of(&self, source: &SourceConfig) -> EventFilter {
        let names = self
            .instance(&source.source_id)
            .map(|i| i.filter_rules.clone())
            .unwrap_or_default();
        let task_rules: Vec<(String, FilterRule)> = self
            .filters
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        let same_patterns = |r: &FilterRule| {
            task_rules.iter().any(|(_, t)| {
                t.schema_pattern == r.schema_pattern && t.table_pattern == r.table_pattern
            })
        };
        let from_source: Vec<(String, FilterRule)> = source
            .filters
            .iter()
            .enumerate()
            .filter(|(_, r)| !same_patterns(r))
            .map(|(i, r)| {
                (
                    format!("source {} filters[{i}]", source.source_id),
                    r.clone(),
                )
            })
            .collect();
        EventFilter::new(
            task_rules.iter().chain(&from_source).map(|(n, r)| (n, r)),
            self.case_sensitive,
        )
    }

    /// The block-allow list of one source, as it selects tables.
    fn table_filter_of(&self, source_id: &str) -> TableFilter {
        let filter = TableFilter::with_case(
            &self.block_allow_list_of(source_id),
            &self.meta_schema,
            self.case_sensitive,
        );
        if !self.online_ddl {
            return filter;
        }
        filter.with_online_ddl(OnlineDdlRules::new(
            &self.shadow_table_rules,
            &self.trash_table_rules,
        ))
    }

    /// The table router of one source.
    fn router_of(&self, source_id: &str) -> Router {
        let names = self
            .instance(source_id)
            .map(|i| i.route_rules.clone())
            .unwrap_or_default();
        Router::new(
            source_id,
            self.routes
                .iter()
                .filter(|(n, _)| names.contains(n))
                .map(|(_, r)| r),
            self.case_sensitive,
        )
    }

    /// The expression filters of one source.
    fn expression_filters_of(&self, source_id: &str) -> ExpressionFilters {
        let names = self
            .instance(source_id)
            .map(|i| i.expression_filters.clone())
            .unwrap_or_default();
        ExpressionFilters::new(
            self.expression_filter
                .iter()
                .filter(|(n, _)| names.contains(n))
                .map(|(_, f)| f),
        )
    }
}
